"""A throwaway MIT Kerberos KDC on 127.0.0.1 for the GSSAPI tests.

Needs Debian's ``krb5-kdc`` (krb5kdc, kdb5_util), ``krb5-admin-server`` (kadmin.local)
and ``krb5-user`` (kinit). Everything lives in one temp dir: the realm database, the
krb5.conf / kdc.conf the processes are pointed at (``KRB5_CONFIG``,
``KRB5_KDC_PROFILE``), keytabs and credential caches. ``stop()`` always kills the KDC.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.servers import free_port

TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


def _which(tool: str) -> str | None:
    return shutil.which(tool) or next(
        (str(p) for p in (Path("/usr/sbin") / tool, Path("/sbin") / tool) if p.exists()), None)


def missing_tools() -> list[str]:
    """The KDC tools not installed (empty when the KDC can run)."""
    return [t for t in TOOLS if _which(t) is None]


class KDC:
    """A realm with its own KDC process; principals and keytabs made on demand."""

    def __init__(self, workdir: Path, realm: str = "ZK.TEST") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.realm = realm
        self.port = free_port()
        self.krb5_conf = self.dir / "krb5.conf"
        self.kdc_conf = self.dir / "kdc.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Variables that point Kerberos libraries and tools at this realm."""
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf),
                "KRB5RCACHETYPE": "none", "KRB5_TRACE": str(self.dir / "trace.log")}

    def _run(self, *argv: str, input_: str | None = None) -> str:
        env = dict(os.environ)
        env.update(self.env)
        tool = _which(argv[0])
        assert tool is not None, argv[0]
        p = subprocess.run([tool, *argv[1:]], env=env, input=input_, capture_output=True,
                           text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{p.stdout}\n{p.stderr}")
        return p.stdout

    def start(self) -> KDC:
        d = self.dir
        self.krb5_conf.write_text(f"""\
[libdefaults]
    default_realm = {self.realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    ticket_lifetime = 1h
    forwardable = false

[realms]
    {self.realm} = {{
        kdc = 127.0.0.1:{self.port}
    }}

[domain_realm]
    127.0.0.1 = {self.realm}
    localhost = {self.realm}
""")
        self.kdc_conf.write_text(f"""\
[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}

[realms]
    {self.realm} = {{
        database_name = {d}/principal
        key_stash_file = {d}/stash
        acl_file = {d}/kadm5.acl
        kdc_listen = 127.0.0.1:{self.port}
        kdc_tcp_listen = 127.0.0.1:{self.port}
        max_life = 1h
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{d}/kdc.log
""")
        (d / "kadm5.acl").write_text("")
        self._run("kdb5_util", "create", "-s", "-r", self.realm, "-P", "master-password")
        env = dict(os.environ)
        env.update(self.env)
        kdc = _which("krb5kdc")
        assert kdc is not None
        self.proc = subprocess.Popen([kdc, "-n", "-r", self.realm, "-P", str(d / "kdc.pid")],
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(d / "kdc.err", "ab"),
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"krb5kdc exited: {(d / 'kdc.err').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("krb5kdc did not start listening")

    def add_principal(self, name: str, password: str | None = None) -> str:
        """Create ``name@REALM`` (random key unless ``password``); returns the full name."""
        full = f"{name}@{self.realm}"
        if password is None:
            self._run("kadmin.local", "-q", f"addprinc -randkey {full}")
        else:
            self._run("kadmin.local", "-q", f"addprinc -pw {password} {full}")
        return full

    def keytab(self, principal: str, path: Path) -> Path:
        """Export ``principal``'s keys to ``path`` (keys stay valid: -norandkey)."""
        self._run("kadmin.local", "-q", f"ktadd -norandkey -k {path} {principal}")
        return path

    def kinit(self, principal: str, ccache: Path, keytab: Path | None = None,
              password: str | None = None) -> None:
        """Get a TGT for ``principal`` into ``ccache`` (from a keytab or a password)."""
        if keytab is not None:
            self._run("kinit", "-c", f"FILE:{ccache}", "-kt", str(keytab), principal)
        else:
            self._run("kinit", "-c", f"FILE:{ccache}", principal, input_=f"{password}\n")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
