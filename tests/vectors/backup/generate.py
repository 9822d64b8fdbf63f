#!/usr/bin/env python3
"""Independent writer of the `.mana` v2 test vectors (DESIGN.md §6).

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
