// What the bench pages share: IndexedDB promises, the median, and the backup pages' rows.

export const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
export const deleteDb = (name) => new Promise((res) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = () => res(); });
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `n` records of ~200 bytes of JSON each (the backup issue's anchor), numbered from `from`. */
export function backupRows(n, from = 0) {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return {
      id: `row-${String(i).padStart(7, "0")}`,
      title: `Backup row ${i} with a short title`,
      content: `Body of row ${i}: the quick brown fox jumps over the lazy dog.`,
      updatedAt: 1_700_000_000_000 + i,
      tags: ["a", "b"],
    };
  });
}
