"""Certificates and keys for a local control plane (a throwaway CA per cluster)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)


_Key = ec.EllipticCurvePrivateKey


def _key() -> _Key:
    # EC keys: generating a handful per cluster takes milliseconds, unlike RSA.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPki:
    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    service_account_key: Path
    service_account_pub: Path
    directory: Path

    def client(self, name: str, common_name: str, organization: str | None = None) -> CertPair:
        """A client certificate for `common_name` (an RBAC user; `organization` its group)."""
        cert, key = _leaf(self, _name(common_name, organization), ExtendedKeyUsageOID.CLIENT_AUTH)
        return _write(self.directory, name, cert, key)

    def serving(self, name: str, common_name: str, ips: list[str], dns: list[str]) -> CertPair:
        """A serving certificate for these addresses."""
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        sans += [x509.DNSName(d) for d in dns]
        cert, key = _leaf(self, _name(common_name), ExtendedKeyUsageOID.SERVER_AUTH, sans)
        return _write(self.directory, name, cert, key)


def _write(directory: Path, name: str, cert: x509.Certificate, key: _Key) -> CertPair:
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(_key_pem(key))
    pair.key.chmod(0o600)
    return pair


def _leaf(
    pki: ClusterPki,
    name: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, _Key]:
    ca_cert = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki.ca.key} is not the EC key this CA writes")
    return _sign(ca_cert.subject, ca_key, name, usage, sans)


def _sign(
    issuer: x509.Name,
    ca_key: _Key,
    name: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, _Key]:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def generate(
    directory: Path, apiserver_ips: tuple[str, ...] = ("127.0.0.1", "10.0.0.1")
) -> ClusterPki:
    """Write a CA, the control plane's serving and client certificates and the
    service-account key pair; `apiserver_ips` are the API server's addresses."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    ca_key = _key()
    ca_name = _name("agentfleet-local-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        name: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName] | None = None
    ) -> tuple[x509.Certificate, _Key]:
        return _sign(ca_name, ca_key, name, usage, sans)

    ca = _write(directory, "ca", ca_cert, ca_key)
    serving_sans: list[x509.GeneralName] = [
        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(apiserver_ips)),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
    ]
    apiserver = _write(
        directory,
        "apiserver",
        *leaf(_name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, serving_sans),
    )
    # system:masters is the bootstrap superuser group; RBAC still applies to everyone else.
    admin = _write(
        directory,
        "admin",
        *leaf(_name("agentfleet-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH),
    )
    # The bootstrap RBAC policy grants these users exactly what each component needs.
    controller_manager = _write(
        directory,
        "controller-manager",
        *leaf(_name("system:kube-controller-manager"), ExtendedKeyUsageOID.CLIENT_AUTH),
    )
    scheduler = _write(
        directory,
        "scheduler",
        *leaf(_name("system:kube-scheduler"), ExtendedKeyUsageOID.CLIENT_AUTH),
    )

    sa_key = _key()
    sa_key_path = directory / "sa.key"
    sa_key_path.write_bytes(_key_pem(sa_key))
    sa_key_path.chmod(0o600)
    sa_pub_path = directory / "sa.pub"
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ClusterPki(
        ca, apiserver, admin, controller_manager, scheduler, sa_key_path, sa_pub_path, directory
    )
