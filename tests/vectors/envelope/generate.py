#!/usr/bin/env python3
"""Generates envelope.json: `enc:1:` field envelopes made by an independent implementation
(Python `cryptography`'s AESGCM), so the Rust envelope is checked against bytes it did not
produce. Run by hand when vectors change: `python3 generate.py > envelope.json`."""
import base64, json
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def env(key, nonce, collection, rid, field, value):
    pt = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    ct = AESGCM(key).encrypt(nonce, pt, f"{collection}/{rid}/{field}".encode())
    return "enc:1:" + base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")

cases = []
k1 = bytes(range(32))
k2 = bytes([0xA5] * 32)
for key, nonce, c, i, f, v in [
    (k1, bytes(12), "notes", "n1", "title", "Hello, world"),
    (k1, bytes(range(12)), "notes", "n1", "content", {"blocks": [1, 2, {"t": "ü"}]}),
    (k1, bytes([7] * 12), "todos", "0190a6f0-0000-7000-8000-000000000001", "done", True),
    (k2, bytes([255] * 12), "notes", "n2", "title", None),
    (k2, bytes(range(12, 24)), "notes", "n2", "score", 42),
    (k2, bytes(range(1, 13)), "notes", "n2", "title", ""),
]:
    cases.append({"keyHex": key.hex(), "nonceHex": nonce.hex(), "collection": c, "id": i,
                  "field": f, "value": v, "envelope": env(key, nonce, c, i, f, v)})
print(json.dumps({"source": "python cryptography AESGCM", "cases": cases}, indent=2, ensure_ascii=False))
