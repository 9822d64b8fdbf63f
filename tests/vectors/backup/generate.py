#!/usr/bin/env python3
"""Independent writer of the `.mana` v2 test vectors (docs/backup.md).

It mimics the original JavaScript/WebCrypto writer with nothing but the Python standard library
(zipfile, hashlib.pbkdf2_hmac, hmac) and `cryptography`'s AES-GCM, so the Rust reader is checked
against bytes it did not produce. Usage:

    pip install cryptography
    python3 tests/vectors/backup/generate.py            # (re)write the vectors next to this file
    python3 tests/vectors/backup/generate.py check F [PASSPHRASE]
                                  # read F knowing only the original fields (interop check of
                                  # archives written by the Rust writer); prints JSON row counts

Each vector `<name>.mana` has `<name>.expect.json`:
    {"passphrase": str|null, "limits": {...}?, "expect": {"ok": {...}} | {"error": code, ...}}
The generated files are committed; the Rust test (tests/backup_vectors.rs) does not run Python.
"""

import base64
import hashlib
import hmac
import io
import json
import os
import struct
import sys
import zipfile
import zlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))
DATE = (2026, 11, 25, 10, 0, 0)
PASS = "correct horse battery staple"
SALT = bytes(range(16))
IV = bytes(range(100, 112))

ROWS = {
    "notes": [
        {"id": "n1", "title": "Grüße 🌍", "content": "line one\nline two", "updatedAt": "2026-11-25T09:00:00.000Z"},
        {"id": "n2", "title": "tags", "tags": ["a", "b"], "meta": {"pinned": True, "n": 3.5}},
        {"id": "n3", "deletedAt": "2026-11-25T09:30:00.000Z-0000-9f2c4e1a7b3d5c60"},
    ],
    "todo_items": [
        {"id": "t1", "text": "buy milk", "done": False, "spaceId": "_personal:u1"},
        {"id": "t2", "text": "quote \" and backslash \\", "done": True, "due": None},
    ],
    "empty": [],
}


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64std(b):
    return base64.b64encode(b).decode()


def b64any(s):
    s = s.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))


def jsonl(rows, trailing_newline=True):
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows]
    text = "\n".join(lines)
    if trailing_newline and lines:
        text += "\n"
    return text.encode()


def zinfo(name, compress=zipfile.ZIP_DEFLATED):
    zi = zipfile.ZipInfo(name, date_time=DATE)
    zi.compress_type = compress
    zi.external_attr = 0o644 << 16
    return zi


def make_zip(entries):
    """entries: list of (name, bytes, compress_type)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, ct in entries:
            z.writestr(zinfo(name, ct), data)
    return buf.getvalue()


def data_files(rows=ROWS, trailing_newline=True):
    return {f"data/{t}.jsonl": jsonl(r, trailing_newline) for t, r in rows.items()}


def manifest(rows=ROWS, files=None, passphrase=None, version=2):
    m = {
        "formatVersion": version,
        "schemaVersion": 1,
        "producedBy": "mana-web 1.4.2 (original writer, Python re-implementation)",
        "exportedAt": "2026-11-25T10:00:00.000Z",
        "userId": "u1",
        "scope": {"type": "filtered", "appIds": ["notes", "todo"]},
        "rowCounts": {t: len(r) for t, r in rows.items()},
        "fieldsPlaintext": True,
    }
    if files is not None:
        m["files"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in files.items()}
    if passphrase is not None:
        m["passphrase"] = passphrase
    return json.dumps(m, indent=2).encode()


def derive(passphrase, salt, iterations):
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, iterations, 32)


def key_check(key):
    return hmac.new(key, b"mana-backup-v2/key-check", hashlib.sha256).digest()[:16]


def unsealed(rows=ROWS, with_files=True, trailing_newline=True, extra_entries=(), m=None):
    files = data_files(rows, trailing_newline)
    if m is None:
        m = manifest(rows, files if with_files else None)
    entries = [("manifest.json", m, zipfile.ZIP_DEFLATED)]
    entries += [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items()]
    entries += list(extra_entries)
    return make_zip(entries)


def sealed(rows=ROWS, passphrase=PASS, iterations=1000, key_check_on=True, b64=b64url,
           inner=None, flip_ct=False, bad_sha=False, salt=SALT, iv=IV):
    if inner is None:
        inner = make_zip([(n, d, zipfile.ZIP_DEFLATED) for n, d in data_files(rows).items()])
    key = derive(passphrase, salt, iterations)
    ct = bytearray(AESGCM(key).encrypt(iv, inner, None))
    if flip_ct:
        ct[len(ct) // 2] ^= 0x01
    p = {
        "kdf": "PBKDF2-SHA256",
        "kdfIterations": iterations,
        "kdfSaltBase64": b64(salt),
        "cipher": "AES-GCM-256",
        "ivBase64": b64(iv),
        "plaintextSha256": hashlib.sha256(b"not the data" if bad_sha else inner).hexdigest(),
    }
    if key_check_on:
        p["keyCheck"] = b64(key_check(key))
    m = manifest(rows, None, p)
    archive = make_zip([("manifest.json", m, zipfile.ZIP_DEFLATED), ("data.sealed", bytes(ct), zipfile.ZIP_STORED)])
    return archive, inner, key


def patch_sizes(archive, name, uncompressed):
    """Rewrite the declared uncompressed size of `name` in its local and central headers."""
    b = bytearray(archive)
    eocd = b.rfind(b"PK\x05\x06")
    cd_off = struct.unpack_from("<I", b, eocd + 16)[0]
    count = struct.unpack_from("<H", b, eocd + 10)[0]
    p = cd_off
    for _ in range(count):
        assert b[p:p + 4] == b"PK\x01\x02"
        n, m, k = struct.unpack_from("<HHH", b, p + 28)
        fname = bytes(b[p + 46:p + 46 + n]).decode()
        local = struct.unpack_from("<I", b, p + 42)[0]
        if fname == name:
            struct.pack_into("<I", b, p + 24, uncompressed)
            struct.pack_into("<I", b, local + 22, uncompressed)
        p += 46 + n + m + k
    return bytes(b)


def expected_rows(rows=ROWS):
    return {t: r for t, r in rows.items()}


def write(name, data, passphrase, expect, limits=None, extra=None):
    with open(os.path.join(HERE, name + ".mana"), "wb") as f:
        f.write(data)
    e = {"passphrase": passphrase, "expect": expect}
    if limits:
        e["limits"] = limits
    if extra:
        e.update(extra)
    with open(os.path.join(HERE, name + ".expect.json"), "w") as f:
        json.dump(e, f, indent=2, ensure_ascii=False)
        f.write("\n")


def ok(sealed_flag, key_check_flag=False, rows=ROWS):
    return {"ok": {"sealed": sealed_flag, "keyCheck": key_check_flag, "tables": expected_rows(rows)}}


def err(code, **kw):
    return {"error": code, **kw}


def generate():
    # --- archives that import -------------------------------------------------------------
    write("ok_unsealed", unsealed(), None, ok(False))
    # The original writer: no `files`, no trailing newline after the last row.
    write("ok_unsealed_original", unsealed(with_files=False, trailing_newline=False), None, ok(False))
    arch, inner, key = sealed()
    write("ok_sealed", arch, PASS, ok(True, True), extra={
        "derivedKeyHex": key.hex(), "innerZipSha256": hashlib.sha256(inner).hexdigest()})
    with open(os.path.join(HERE, "ok_sealed.inner.zip"), "wb") as f:
        f.write(inner)
    # The original writer: no keyCheck; here also standard, padded base64.
    arch, _, _ = sealed(key_check_on=False, b64=b64std)
    write("ok_sealed_no_keycheck", arch, PASS, ok(True, False))
    arch, _, key = sealed(iterations=600000, passphrase="pässwörd-600k")
    write("ok_sealed_600k", arch, "pässwörd-600k", ok(True, True), extra={"derivedKeyHex": key.hex()})

    # --- passphrase and tamper codes ------------------------------------------------------
    arch, _, _ = sealed()
    write("fail_passphrase_required", arch, None, err("passphrase_required"))
    write("fail_wrong_passphrase", arch, "Tr0ub4dor&3", err("wrong_passphrase"))
    arch, _, _ = sealed(flip_ct=True)
    write("fail_tampered_ciphertext", arch, PASS, err("archive_tampered"))
    # A raw byte flip inside data.sealed (the ZIP's CRC no longer matches either).
    arch, _, _ = sealed()
    b = bytearray(arch)
    off = b.find(b"data.sealed") + len("data.sealed") + 40
    b[off] ^= 0x80
    write("fail_tampered_raw_flip", bytes(b), PASS, err("archive_tampered"))
    arch, _, _ = sealed(bad_sha=True)
    write("fail_tampered_plaintext_sha", arch, PASS, err("archive_tampered"))
    arch, _, _ = sealed(key_check_on=False)
    write("fail_no_keycheck_wrong_passphrase", arch, "Tr0ub4dor&3", err("wrong_passphrase_or_tampered"))
    arch, _, _ = sealed(key_check_on=False, flip_ct=True)
    write("fail_no_keycheck_tampered", arch, PASS, err("wrong_passphrase_or_tampered"))
    files = data_files()
    files["data/notes.jsonl"] = files["data/notes.jsonl"].replace(b"buy", b"BUY").replace(b"tags", b"TAGS")
    m = manifest(ROWS, data_files())  # hashes of the original files
    write("fail_tampered_file_sha", make_zip([("manifest.json", m, zipfile.ZIP_DEFLATED)] +
          [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items()]), None, err("archive_tampered"))
    files = data_files()
    m = manifest(ROWS, files)
    write("fail_file_removed", make_zip([("manifest.json", m, zipfile.ZIP_DEFLATED)] +
          [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items() if "todo" not in n]), None,
          err("archive_tampered"))

    # --- not archives, damaged archives ---------------------------------------------------
    write("fail_not_a_zip", b"%PDF-1.7\nthis is not a zip file\n" * 8, None, err("not_a_mana_archive"))
    write("fail_empty_file", b"", None, err("not_a_mana_archive"))
    write("fail_no_manifest", make_zip([("data/notes.jsonl", jsonl(ROWS["notes"]), zipfile.ZIP_DEFLATED)]),
          None, err("not_a_mana_archive"))
    write("fail_manifest_not_json", make_zip([("manifest.json", b"{nope", zipfile.ZIP_DEFLATED)]), None,
          err("not_a_mana_archive"))
    write("fail_manifest_not_utf8", make_zip([("manifest.json", b'{"formatVersion":2,"app":"\xff"}',
                                                zipfile.ZIP_DEFLATED)]), None, err("not_a_mana_archive"))
    full = unsealed()
    write("fail_truncated", full[: len(full) * 2 // 3], None, err("archive_corrupt"))
    write("fail_unsupported_version", unsealed(m=manifest(ROWS, data_files(), version=3)), None,
          err("unsupported_format_version"))

    # --- hostile entry names --------------------------------------------------------------
    for vname, entry in [("dotdot", "../evil.jsonl"), ("dotdot_data", "data/../../evil.jsonl"),
                         ("absolute", "/tmp/evil.jsonl"), ("backslash", "data\\..\\..\\evil.jsonl")]:
        write(f"fail_traversal_{vname}", unsealed(extra_entries=[(entry, b'{"id":"x"}\n', zipfile.ZIP_DEFLATED)]),
              None, err("invalid_entry_name"))
    inner = make_zip([(n, d, zipfile.ZIP_DEFLATED) for n, d in data_files().items()] +
                     [("../../evil.jsonl", b'{"id":"x"}\n', zipfile.ZIP_DEFLATED)])
    arch, _, _ = sealed(inner=inner)
    write("fail_traversal_inside_sealed", arch, PASS, err("invalid_entry_name"))
    # The stored name is harmless but an Info-ZIP Unicode Path extra field (0x7075), which unzip
    # tools display and extract to, says "../evil.jsonl".
    zi = zinfo("data/extra.jsonl")
    target = b"../evil.jsonl"
    body = b"\x01" + struct.pack("<I", zlib.crc32(b"data/extra.jsonl")) + target
    zi.extra = struct.pack("<HH", 0x7075, len(body)) + body
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zinfo("manifest.json"), manifest(ROWS, None))
        for n, d in data_files().items():
            z.writestr(zinfo(n), d)
        z.writestr(zi, b'{"id":"x"}\n')
    write("fail_traversal_unicode_path_field", buf.getvalue(), None, err("invalid_entry_name"))
    dup = io.BytesIO()
    with zipfile.ZipFile(dup, "w") as z:
        files = data_files()
        z.writestr(zinfo("manifest.json"), manifest(ROWS, None))
        for n, d in files.items():
            z.writestr(zinfo(n), d)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr(zinfo("data/notes.jsonl"), b'{"id":"smuggled"}\n')
    write("fail_duplicate_entry", dup.getvalue(), None, err("archive_corrupt"))

    # --- zip bombs ------------------------------------------------------------------------
    # Declares 3 GiB uncompressed for a tiny entry: refused from the headers alone.
    write("fail_zip_bomb_declared", patch_sizes(unsealed(), "data/notes.jsonl", 3 << 30), None,
          err("archive_too_large"))
    # Declares 70 bytes but inflates to 64 MiB of valid rows: refused while decompressing.
    bomb = b'{"id":"bomb"}\n' * ((64 << 20) // 14)
    rows = {"notes": [{"id": "bomb"}]}
    m = manifest(rows, None)
    arch = make_zip([("manifest.json", m, zipfile.ZIP_DEFLATED), ("data/notes.jsonl", bomb, zipfile.ZIP_DEFLATED)])
    write("fail_zip_bomb_inflate", patch_sizes(arch, "data/notes.jsonl", 70), None,
          err("archive_too_large"), limits={"maxEntryBytes": 8 << 20, "maxTotalBytes": 8 << 20})

    # --- bad content ----------------------------------------------------------------------
    rows = {"notes": ROWS["notes"]}
    bad = jsonl(rows["notes"]).split(b"\n")
    bad[2] = b"[1, 2, 3]"
    files = {"data/notes.jsonl": b"\n".join(bad)}
    write("fail_bad_jsonl_array", make_zip([("manifest.json", manifest(rows, files), zipfile.ZIP_DEFLATED)] +
          [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items()]), None,
          err("archive_corrupt", table="notes", line=3))
    files = {"data/notes.jsonl": jsonl(rows["notes"]).replace(b'{"id":"n2"', b'{"id":"n2" oops', 1)}
    write("fail_bad_jsonl_syntax", make_zip([("manifest.json", manifest(rows, None), zipfile.ZIP_DEFLATED)] +
          [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items()]), None,
          err("archive_corrupt", table="notes", line=2))
    # A byte that is not UTF-8 inside a string: not JSON text.
    files = {"data/notes.jsonl": jsonl(rows["notes"]).replace(b'{"id":"n2"', b'{"id":"n2\xc3"', 1)}
    write("fail_bad_jsonl_utf8", make_zip([("manifest.json", manifest(rows, None), zipfile.ZIP_DEFLATED)] +
          [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items()]), None,
          err("archive_corrupt", table="notes", line=2))
    files = {"data/notes.jsonl": jsonl(rows["notes"]).replace(b"\n", b"\n\n", 1)}
    write("fail_bad_jsonl_blank_line", make_zip([("manifest.json", manifest(rows, None), zipfile.ZIP_DEFLATED)] +
          [(n, d, zipfile.ZIP_DEFLATED) for n, d in files.items()]), None,
          err("archive_corrupt", table="notes", line=2))
    inner_files = data_files()
    inner_files["data/todo_items.jsonl"] += b"not json\n"
    inner = make_zip([(n, d, zipfile.ZIP_DEFLATED) for n, d in inner_files.items()])
    arch, _, _ = sealed(inner=inner)
    write("fail_sealed_bad_jsonl", arch, PASS, err("archive_corrupt", table="todo_items", line=3))
    wrong_counts = dict(ROWS)
    m = json.loads(manifest(ROWS, data_files()))
    m["rowCounts"]["notes"] = 99
    write("fail_row_count_mismatch", unsealed(m=json.dumps(m).encode()), None,
          err("archive_corrupt", table="notes"))

    ambiguous_vectors()


# --- a ZIP laid out by hand, for the layouts no well-behaved writer produces ---------------------
def local_header(name, data, crc=None, csize=None, usize=None, method=0, flags=0x0800):
    """A stored (method 0) local header for `data` (already compressed if method != 0)."""
    n = name.encode()
    crc = zlib.crc32(data) if crc is None else crc
    csize = len(data) if csize is None else csize
    usize = len(data) if usize is None else usize
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x5B39, crc, csize, usize,
                       len(n), 0) + n


def central_record(name, data, offset, crc=None, csize=None, usize=None, method=0, flags=0x0800,
                   comment=b""):
    n = name.encode()
    crc = zlib.crc32(data) if crc is None else crc
    csize = len(data) if csize is None else csize
    usize = len(data) if usize is None else usize
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0, 0x5B39, crc, csize,
                       usize, len(n), 0, len(comment), 0, 0, 0o644 << 16, offset) + n + comment


def end_record(count, cd_size, cd_offset, comment=b""):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset,
                       len(comment)) + comment


def raw_zip(entries, prefix=b"", between=b"", extra_central=(), comment=b""):
    """entries: (name, stored data); `prefix` before the first local header, `between` between the
    last entry and the central directory; `extra_central`: central records (fn of offsets)."""
    body = bytearray(prefix)
    central = bytearray()
    offsets = {}
    for name, data in entries:
        offsets[name] = len(body)
        body += local_header(name, data) + data
    body += between
    cd_offset = len(body)
    for name, data in entries:
        central += central_record(name, data, offsets[name])
    for rec in extra_central:
        central += rec(offsets)
    count = len(entries) + len(extra_central)
    return bytes(body + central + end_record(count, len(central), cd_offset, comment))


def patch_central(archive, name, field_offset, fmt, value, local_offset=None):
    """Rewrite a field of `name`'s central record (and, if given, of its local header)."""
    b = bytearray(archive)
    eocd = b.rfind(b"PK\x05\x06")
    cd_off = struct.unpack_from("<I", b, eocd + 16)[0]
    count = struct.unpack_from("<H", b, eocd + 10)[0]
    p = cd_off
    for _ in range(count):
        n, m, k = struct.unpack_from("<HHH", b, p + 28)
        fname = bytes(b[p + 46:p + 46 + n]).decode()
        local = struct.unpack_from("<I", b, p + 42)[0]
        if fname == name:
            struct.pack_into(fmt, b, p + field_offset, value)
            if local_offset is not None:
                struct.pack_into(fmt, b, local + local_offset, value)
        p += 46 + n + m + k
    return bytes(b)


def rename_central(archive, old, new):
    """The central directory says `new` where the local header still says `old` (same length)."""
    assert len(old) == len(new)
    b = bytearray(archive)
    cd_off = struct.unpack_from("<I", b, b.rfind(b"PK\x05\x06") + 16)[0]
    at = b.index(old.encode(), cd_off)
    b[at:at + len(old)] = new.encode()
    return bytes(b)


def plain_entries(rows=ROWS, with_files=True):
    files = data_files(rows)
    m = manifest(rows, files if with_files else None)
    return [("manifest.json", m)] + list(files.items())


def ambiguous_vectors():
    """Archives that different ZIP readers would see differently (archive_corrupt), size and count
    limits checked before the directory is parsed, and the true class of each entry failure."""
    good = raw_zip(plain_entries())
    # The stored name passes every name check, but the local header (which streaming readers and
    # `unzip`-style tools use) says "../../evil.txt" ("zip cloaking").
    cloaked = raw_zip(plain_entries() + [("../../evil.txt", b"pwned\n")])
    write("fail_zip_cloaking", rename_central(cloaked, "../../evil.txt", "extra/evil.txt"), None,
          err("archive_corrupt"))
    # The local header's CRC disagrees with the central directory's.
    write("fail_local_header_mismatch", patch_local(good, "data/notes.jsonl", 14, "<I", 0xDEADBEEF),
          None, err("archive_corrupt"))
    # An ignored entry whose stored data holds a whole second entry: data/notes.jsonl is listed
    # twice over the same bytes (the overlap behind "35 KB extracted to 2 GB").
    inner_rows = {"notes": [{"id": "overlap"}]}
    inner_data = jsonl(inner_rows["notes"])
    inner = local_header("data/notes.jsonl", inner_data) + inner_data
    m = manifest(inner_rows, None)
    entries = [("manifest.json", m), ("extra/blob.bin", b"xx" + inner + b"yy")]
    def shadow(offsets):
        return central_record("data/notes.jsonl", inner_data, offsets["extra/blob.bin"] + 30 +
                              len("extra/blob.bin") + 2)
    write("fail_overlapping_entries", raw_zip(entries, extra_central=[shadow]), None,
          err("archive_corrupt"))
    # A compressed size that runs past the end of the file (and one that runs into the directory).
    last = "data/todo_items.jsonl"
    size = len(data_files()[last])
    write("fail_size_past_end", patch_central(good, last, 20, "<I", size + len(good), local_offset=18),
          None, err("archive_corrupt"))
    write("fail_size_into_directory", patch_central(good, "data/empty.jsonl", 20, "<I", 40,
                                                    local_offset=18), None, err("archive_corrupt"))
    # ... and one that runs into the next entry.
    write("fail_size_into_next_entry", patch_central(good, last, 20, "<I", size + 40, local_offset=18),
          None, err("archive_corrupt"))
    # Data before the first local header: shifted offsets (the zip crate finds the shift) and
    # offsets that count the prefix (a self-extracting stub, `zip -A`).
    stub = b"MZ this is not part of the archive\n" * 4
    write("fail_data_before_first_header", stub + good, None, err("archive_corrupt"))
    entries = plain_entries()
    adjusted = raw_zip(entries, prefix=stub)
    write("fail_prefix_offsets_adjusted", adjusted, None, err("archive_corrupt"))
    # Data after the end record, between the directory and the end record, between two entries.
    write("fail_data_after_end_record", good + b"trailing bytes\n", None, err("archive_corrupt"))
    eocd = good.rfind(b"PK\x05\x06")
    write("fail_data_before_end_record", good[:eocd] + b"junk" + good[eocd:], None,
          err("archive_corrupt"))
    hidden = local_header("data/hidden.jsonl", b'{"id":"hidden"}\n') + b'{"id":"hidden"}\n'
    write("fail_hidden_local_header", raw_zip(entries, between=hidden), None, err("archive_corrupt"))
    # More than one end record: appended, and one that hides in the other's comment.
    write("fail_two_end_records", good + good[eocd:], None, err("archive_corrupt"))
    first = bytearray(good[eocd:])
    struct.pack_into("<H", first, 20, 22)
    write("fail_end_record_in_comment", good[:eocd] + bytes(first) + good[eocd:], None,
          err("archive_corrupt"))
    # The end record counts fewer entries than the directory holds (a reader that trusts the count
    # misses data/hidden.jsonl; one that walks the directory finds it).
    hid = raw_zip(entries + [("data/hidden.jsonl", b'{"id":"hidden"}\n')])
    e2 = hid.rfind(b"PK\x05\x06")
    b = bytearray(hid)
    struct.pack_into("<HH", b, e2 + 8, len(entries), len(entries))
    write("fail_entry_count_mismatch", bytes(b), None, err("archive_corrupt"))
    # Bounded memory: a zip64 end record that declares 5,000,000 entries is refused before the
    # directory is parsed; so is a directory larger than the limit.
    body_end = struct.unpack_from("<I", good, eocd + 16)[0]
    cd = good[body_end:eocd]
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 5_000_000, 5_000_000,
                      5_000_000 * 46, body_end)
    loc = struct.pack("<IIQI", 0x07064B50, 0, body_end + len(cd), 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    write("fail_too_many_entries_declared", good[:eocd] + z64 + loc + end, None,
          err("archive_too_large"))
    write("fail_directory_too_large", good, None, err("archive_too_large"),
          limits={"maxDirectoryBytes": 128})
    write("fail_too_many_entries", good, None, err("archive_too_large"), limits={"maxEntries": 3})

    # --- the true class of each entry failure ---------------------------------------------------
    # A CRC-32 that does not match (both headers agree on it): a damaged entry, not a zip bomb.
    orig = unsealed(with_files=False)
    crc = zlib.crc32(data_files()["data/notes.jsonl"]) ^ 0x1
    write("fail_crc_mismatch", patch_central(orig, "data/notes.jsonl", 16, "<I", crc, local_offset=14),
          None, err("archive_corrupt"))
    # Fewer bytes than both headers declare (under every limit).
    write("fail_uncompressed_size_mismatch", patch_sizes(orig, "data/notes.jsonl", 4096), None,
          err("archive_corrupt"))
    # Compression methods a .mana archive never uses.
    for vname, method in [("bzip2", zipfile.ZIP_BZIP2), ("lzma", zipfile.ZIP_LZMA)]:
        files = data_files()
        entries = [("manifest.json", manifest(ROWS, files), zipfile.ZIP_DEFLATED)]
        entries += [(n, d, method if "notes" in n else zipfile.ZIP_DEFLATED) for n, d in files.items()]
        write(f"fail_method_{vname}", make_zip(entries), None, err("unsupported_format_version"))
    # An archive written to a pipe: data descriptors after each entry (a streaming writer's
    # layout) is a sound layout and imports.
    write("ok_unsealed_streamed", streamed_zip(plain_entries()), None, ok(False))
    # ... but a data descriptor must repeat the central directory's CRC and sizes.
    streamed = bytearray(streamed_zip(plain_entries()))
    at = streamed.index(b"PK\x07\x08")
    streamed[at + 4] ^= 0xFF
    write("fail_data_descriptor_mismatch", bytes(streamed), None, err("archive_corrupt"))
    # A zip64 end record (and locator) that agrees with the end record is a sound layout.
    cd_start = struct.unpack_from("<I", good, eocd + 16)[0]
    cd_len = eocd - cd_start
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 4, 4, cd_len, cd_start)
    loc = struct.pack("<IIQI", 0x07064B50, 0, eocd, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    write("ok_unsealed_zip64_end", good[:eocd] + z64 + loc + end, None, ok(False))
    # The ZIP inside data.sealed gets the same checks: a cloaked name, bytes before its first
    # local header.
    inner_entries = list(data_files().items())
    cloaked = raw_zip(inner_entries + [("../../evil.txt", b"pwned\n")])
    arch, _, _ = sealed(inner=rename_central(cloaked, "../../evil.txt", "extra/evil.txt"))
    write("fail_sealed_inner_zip_cloaking", arch, PASS, err("archive_corrupt"))
    arch, _, _ = sealed(inner=b"junk" + raw_zip(inner_entries))
    write("fail_sealed_inner_data_before_first_header", arch, PASS, err("archive_corrupt"))


def patch_local(archive, name, field_offset, fmt, value):
    """Rewrite a field of `name`'s local header only (the archive starts with a local header)."""
    b = bytearray(archive)
    at = 0
    while True:
        n = struct.unpack_from("<H", b, at + 26)[0]
        if bytes(b[at + 30:at + 30 + n]).decode() == name:
            struct.pack_into(fmt, b, at + field_offset, value)
            return bytes(b)
        m = struct.unpack_from("<H", b, at + 28)[0]
        csize = struct.unpack_from("<I", b, at + 18)[0]
        at += 30 + n + m + csize


class _Pipe(io.RawIOBase):
    """A write-only, unseekable stream: zipfile then writes data descriptors."""
    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def streamed_zip(entries):
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w") as z:
        for name, data in entries:
            with z.open(zinfo(name), "w") as f:
                f.write(data)
    return bytes(pipe.buf)


def check(path, passphrase=None):
    """A reader that knows only the original fields (no `files`, no `keyCheck`)."""
    z = zipfile.ZipFile(path)
    names = z.namelist()
    assert names[0] == "manifest.json", f"manifest.json is not the first entry: {names}"
    m = json.loads(z.read("manifest.json"))
    assert m["formatVersion"] == 2
    p = m.get("passphrase")
    if p:
        assert p["kdf"] == "PBKDF2-SHA256" and p["cipher"] == "AES-GCM-256"
        info = z.getinfo("data.sealed")
        assert info.compress_type == zipfile.ZIP_STORED, "data.sealed must be stored"
        key = derive(passphrase, b64any(p["kdfSaltBase64"]), p["kdfIterations"])
        inner = AESGCM(key).decrypt(b64any(p["ivBase64"]), z.read("data.sealed"), None)
        assert hashlib.sha256(inner).hexdigest() == p["plaintextSha256"]
        z = zipfile.ZipFile(io.BytesIO(inner))
    counts = {}
    for n in z.namelist():
        if n.startswith("data/") and n.endswith(".jsonl"):
            lines = [l for l in z.read(n).decode().split("\n") if l]
            for l in lines:
                assert isinstance(json.loads(l), dict)
            counts[n[5:-6]] = len(lines)
    assert counts == {t: c for t, c in m["rowCounts"].items()}, (counts, m["rowCounts"])
    print(json.dumps({"sealed": bool(p), "rowCounts": counts}, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        generate()
