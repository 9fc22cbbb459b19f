"""Per-request cost of authenticating a node: X.509-SVID (mTLS) versus bearer token.

In-process, one thread, CPU time (``time.process_time``) so other jobs on the machine
inflate it little. Measures the scheduler's authentication step only (TLS record and
handshake costs are not included: one handshake per agent connection, kept alive):

- ``svid_cached``: PeerAuthenticator on a certificate verified before (expiry and
  revocation checks per request);
- ``svid_full``: PeerAuthenticator on a cache miss, a full ``verify_client_svid`` (once
  per certificate per 30 s);
- ``token_cached`` / ``token_full``: Service.authenticate of a node's bearer token.

``python benchmarks/identity_mtls_auth.py [--n 20000] [--json]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path


def per_call_us(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from identity.pki import build_csr, generate_node_key
    from scheduler.identity_layer import install as install_identity
    from scheduler.mtls import install as install_mtls
    from scheduler.service import Service
    from scheduler.settings import Settings

    with tempfile.TemporaryDirectory(prefix="cntrust-bench-") as tmp:
        service = Service(Settings(data_dir=Path(tmp)))
        try:
            layer = install_identity(service)
            peer = install_mtls(service)
            service.write_sync(layer.add_operator("acme", "bench"))
            token, _record, write = layer.create_join_token("acme", timedelta(minutes=5))
            service.write_sync(write)
            enrollment = layer.begin_enrollment(
                token, build_csr(generate_node_key()).decode(), "n1"
            )
            service.write_sync(enrollment.record)
            tls = {"client_cert_chain": [enrollment.svid.leaf_pem.decode()]}
            bearer = "Bearer " + service.issue_token("node", "n1", timedelta(minutes=15))

            def svid_full() -> object:
                peer._cache.clear()  # measure the cache-miss path
                return peer(tls)

            def token_full() -> object:
                service._verified.clear()  # measure the uncached path
                return service.authenticate(bearer)

            results = {
                "svid_cached_us": per_call_us(lambda: peer(tls), args.n),
                "svid_full_us": per_call_us(svid_full, max(1, args.n // 10)),
                "token_cached_us": per_call_us(lambda: service.authenticate(bearer), args.n),
                "token_full_us": per_call_us(token_full, max(1, args.n // 10)),
                "cpu_clock": "process_time",
                "n": args.n,
            }
        finally:
            service.close()
    rounded = {k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()}
    if args.json:
        print(json.dumps(rounded, indent=2))
    else:
        for key, value in rounded.items():
            print(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
