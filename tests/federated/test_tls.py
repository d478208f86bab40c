"""A real federation over TLS on the loopback: a throwaway CA signs the server's
certificate for 127.0.0.1 and localhost; ``launchml federate server`` and two
clients that hold the CA complete a round, and clients without the CA, with
another CA, or without TLS are refused at join with an error naming the fix."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
import yaml

from tests.federated.test_federated import FED_PY, needs_fed
from tests.federated.test_real import _kill, _rounds, _start

# run with the federated environment's python: ``cryptography`` comes with Flower there
CERTS = r"""
import datetime, ipaddress, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

now = datetime.datetime.now(datetime.timezone.utc)
def cert(subject, issuer, public, signer, *extensions):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(public).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1)))
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
def ca(folder, name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_bytes(cert(subject, subject, key.public_key(), key,
        (x509.BasicConstraints(ca=True, path_length=None), True)))
    return key, subject
good, wrong = Path(sys.argv[1]), Path(sys.argv[2])
ca_key, ca_name = ca(good, "launchml test CA")
ca(wrong, "another CA")
key = ec.generate_private_key(ec.SECP256R1())
(good / "server.pem").write_bytes(cert(
    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name,
    key.public_key(), ca_key,
    (x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                  x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
    (x509.BasicConstraints(ca=False, path_length=None), True)))
(good / "server.key").write_bytes(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption()))
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_fed
@pytest.mark.slow
def test_federation_over_tls_and_clients_without_the_ca_refused(tmp_path):
    from sklearn.datasets import load_wine

    certs, wrong = tmp_path / "certs", tmp_path / "wrong"
    subprocess.run([str(FED_PY), "-c", CERTS, str(certs), str(wrong)], check=True)
    wine = load_wine(as_frame=True).frame
    wine["target"] = wine["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    wine.to_csv(tmp_path / "reference.csv", index=False)
    for i, site in enumerate("ab"):
        wine.iloc[i::2].to_csv(tmp_path / f"site_{site}.csv", index=False)
    conf = {"name": "tls", "output_dir": str(tmp_path / "runs"), "seed": 0,
            "data": {"train": "reference.csv", "target": "target"},
            "train": {"batch_size": 16, "learning_rate": 0.01},
            "federated": {"rounds": 1, "min_clients": 2, "address": f"127.0.0.1:{_port()}",
                          "tls": True},
            "optimize": {"onnx": False, "int8": False}, "evaluate": {"report": False}}
    config, plain = tmp_path / "fed.yaml", tmp_path / "plain.yaml"
    config.write_text(yaml.safe_dump(conf))
    plain.write_text(yaml.safe_dump({**conf, "federated": {**conf["federated"],
                                                            "tls": False}}))
    site_a = str(tmp_path / "site_a.csv")
    server = _start(["server", str(config), "--clients", "2", "--certificates", str(certs),
                     "--round-timeout", "240"], tmp_path / "server.log", tmp_path)
    procs = {}
    try:
        # the refused sites first: each exits once it has met the server (or its config);
        # the round cannot start before the two good sites join, after them
        for name, args in {"no_ca": [str(config)],
                           "wrong_ca": [str(config), "--certificates", str(wrong)],
                           "no_tls": [str(plain)]}.items():
            procs[name] = _start(["client", *args, "--data", site_a, "--site", name],
                                 tmp_path / f"{name}.log", tmp_path)
        for name in ("no_ca", "wrong_ca", "no_tls"):
            procs[name].wait(timeout=300)
        for site in "ab":
            procs[site] = _start(["client", str(config), "--data",
                                  str(tmp_path / f"site_{site}.csv"), "--site", site,
                                  "--certificates", str(certs)],
                                 tmp_path / f"client_{site}.log", tmp_path)
        server.wait(timeout=600)
    finally:
        _kill(server)
        for proc in procs.values():
            _kill(proc)
    logs = {name: (tmp_path / f"{name}.log").read_text() for name in ("no_ca", "wrong_ca",
                                                                      "no_tls")}
    assert procs["no_ca"].returncode != 0 and "needs --certificates" in logs["no_ca"]
    assert procs["wrong_ca"].returncode != 0, logs["wrong_ca"][-2000:]
    assert "certificate is not verified" in logs["wrong_ca"], logs["wrong_ca"][-2000:]
    assert procs["no_tls"].returncode != 0, logs["no_tls"][-2000:]
    assert "speaks TLS" in logs["no_tls"], logs["no_tls"][-2000:]
    log = (tmp_path / "server.log").read_text()
    assert server.returncode == 0, log[-3000:]
    assert "(TLS)" in log
    rounds = _rounds(tmp_path / "runs" / "tls" / "events.jsonl")
    assert [r["round"] for r in rounds] == [1]
    assert len([c for c in rounds[0]["per_client"] if "error" not in c]) == 2
    meta = json.loads((tmp_path / "runs" / "tls" / "model" / "package.json").read_text())
    assert meta["privacy"]["federated"]["mode"] == "real"
