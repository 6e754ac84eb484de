"""Run VMware's vcsim for tests and benchmarks: built once (scripts/build-vcsim.sh), TLS from our own CA.

In CI (``CI=1``) a missing Go toolchain or govmomi is an error; elsewhere it skips with the reason.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import selectors
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-vcsim.sh"
USER = "drplan@vsphere.local"
START_TIMEOUT = 120.0  # seconds for vcsim to print its URL (500+ VMs take a couple of seconds)


class VcsimUnavailable(RuntimeError):
    """Go or Debian's govmomi is missing: the build script said how to install them."""


def build_vcsim() -> Path:
    """Build (or reuse) the cached vcsim binary and return its path."""
    proc = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=900)
    if proc.returncode == 3:
        raise VcsimUnavailable(proc.stderr.strip())
    if proc.returncode != 0:
        raise RuntimeError(f"building vcsim failed:\n{proc.stderr}")
    return Path(proc.stdout.strip().splitlines()[-1])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def make_ca(
    directory: Path,
    name: str = "drplan test CA",
) -> tuple[Path, rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed CA (RSA 2048): returns (ca.pem path, key, cert)."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name.replace(' ', '-')}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_cert(
    directory: Path, ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate
) -> tuple[Path, Path]:
    """A server certificate (SAN IP:127.0.0.1, RSA 2048) signed by the CA: (cert.pem, key.pem)."""
    key = _key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "vcsim-cert.pem", directory / "vcsim-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Vcsim:
    """A running vcsim: where it listens, how to log in, and every VM name it holds."""

    host: str
    port: int
    ca_file: str
    user: str
    password: str = field(repr=False)
    vms: list[str]
    proc: subprocess.Popen = field(repr=False)
    log_file: Path

    def stop(self) -> None:
        """Stop this vcsim (by its own PID) and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def site(self, **kw):
        from drplan.vcenter import VCenterSite

        kw.setdefault("ca_file", self.ca_file)
        password = kw.pop("password", self.password)
        return VCenterSite(self.host, port=self.port, user=self.user, password=password, **kw)


@contextmanager
def running_vcsim(
    directory: Path,
    *,
    vms: int = 4,
    names: Sequence[str] = (),
    portgroups: Sequence[str] = (),
    binary: Path | None = None,
) -> Iterator[Vcsim]:
    """Start vcsim on 127.0.0.1 (a free port) with TLS from a fresh CA; stop it on exit."""
    binary = binary or build_vcsim()
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, ca_key, ca_cert = make_ca(directory)
    cert, key = make_server_cert(directory, ca_key, ca_cert)
    password = secrets.token_urlsafe(16)
    log_file = directory / "vcsim.log"
    cmd = [
        str(binary),
        "-listen",
        "127.0.0.1:0",
        "-vms",
        str(vms),
        "-cert",
        str(cert),
        "-key",
        str(key),
        "-user",
        USER,
        "-names",
        ",".join(names),
        "-portgroups",
        ",".join(portgroups),
    ]
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=directory,
            env={**os.environ, "VCSIM_PASSWORD": password, "TMPDIR": str(directory)},
        )
    try:
        info = _read_banner(proc, log_file)
        sim = Vcsim(
            host=info["host"],
            port=int(info["port"]),
            ca_file=str(ca_file),
            user=USER,
            password=password,
            vms=list(info["vms"]),
            proc=proc,
            log_file=log_file,
        )
        yield sim
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        if proc.stdout:
            proc.stdout.close()


def _read_banner(proc: subprocess.Popen, log_file: Path) -> dict:
    """The JSON line vcsim prints once it listens (bounded wait; no sleeping)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                line = proc.stdout.readline()
                if line:
                    return json.loads(line)
                break  # EOF: vcsim exited
    proc.kill()
    proc.wait(timeout=20)
    tail = log_file.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"vcsim did not start (exit code {proc.returncode}):\n{tail}")
