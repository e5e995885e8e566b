"""A stand-in cloud metadata server, run by the local node as one of its components.

Clouds serve instance metadata, and with it credentials, at 169.254.169.254; an agent
that reaches it from a Pod can take the machine's identity. The attack tests need that
address to answer when nothing forbids it, so that "blocked by NetworkPolicy" is proved,
not assumed. The host may have a real metadata server there (cloud machines do), so the
address is never added on the host. Instead:

    node network namespace                      a network namespace of its own
    route 169.254.169.254/32 dev afmeta0  <-->  afmeta1 169.254.169.254/32
                                                default route dev afmeta1
                                                this server, on port 80

Pods' packets to it are forwarded by the node (not delivered locally), so they pass the
node's POSTROUTING hooks like traffic to any address off the node, and the
NetworkPolicy enforcer judges them. The server answers every GET and PUT (IMDSv2 asks
for a token with PUT) with a fixed body, and prints one line per connection and per request to
its log (`<node logs>/metadata.log`), where tests look for connections that should not
have come.

Run as `python -m agentfleet.dev.localenv.metadata <address> <port>` in the node's network
namespace, as root; it lives in the sandbox, so its namespace, links and routes go with
the sandbox however the sandbox ends.
"""

from __future__ import annotations

import ctypes
import os
import socketserver
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE_LINK = "afmeta0"
SERVER_LINK = "afmeta1"
BODY = b"agentfleet-local-metadata\n"
CONNECTION_MARK = "metadata connection"
REQUEST_MARK = "metadata request"
_CLONE_NEWNET = 0x40000000  # os.unshare and os.CLONE_NEWNET arrive with Python 3.12


def _unshare_network() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWNET): {os.strerror(errno)}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class _Handler(BaseHTTPRequestHandler):
    server_version = "agentfleet-metadata"

    def _answer(self) -> None:
        print(
            f"{REQUEST_MARK} from {self.client_address[0]}: {self.command} {self.path}",
            flush=True,
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = _answer
    do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer's own asks for the address's name: a DNS timeout where there is none.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def verify_request(self, request: object, client_address: object) -> bool:
        # Every connection, also one that never sends a request (a bare TCP probe).
        print(f"{CONNECTION_MARK} from {client_address}", flush=True)
        return True


def move_into_own_namespace(address: str) -> None:
    """Create the veth pair, enter a new network namespace with one end, serve there.

    A helper process stays in the node's namespace: it moves our end in once we have
    entered the new namespace, and routes the address to the link only once our side is
    configured (an early packet would leave a failed neighbour entry behind)."""
    _ip("link", "add", NODE_LINK, "type", "veth", "peer", "name", SERVER_LINK)
    to_helper, from_parent = os.pipe()
    to_parent, from_helper = os.pipe()
    helper = os.fork()
    if helper == 0:  # pragma: no cover - the child stays in the node's namespace
        os.close(from_parent)
        os.close(to_parent)
        try:
            os.read(to_helper, 1)
            _ip("link", "set", SERVER_LINK, "netns", str(os.getppid()))
            os.write(from_helper, b"x")
            os.read(to_helper, 1)
            _ip("link", "set", NODE_LINK, "up")
            _ip("route", "add", f"{address}/32", "dev", NODE_LINK)
        except subprocess.CalledProcessError as exc:
            print(f"metadata: {exc.cmd}: {exc.stderr}", file=sys.stderr, flush=True)
            os._exit(1)
        os._exit(0)
    os.close(to_helper)
    os.close(from_helper)
    _unshare_network()
    os.write(from_parent, b"x")
    if os.read(to_parent, 1) != b"x":
        raise RuntimeError("could not move the metadata link into its namespace")
    _ip("link", "set", "lo", "up")
    _ip("addr", "add", f"{address}/32", "dev", SERVER_LINK)
    _ip("link", "set", SERVER_LINK, "up")
    # Replies go back to whatever node address the request came from.
    _ip("route", "add", "default", "dev", SERVER_LINK)
    os.write(from_parent, b"x")
    _, status = os.waitpid(helper, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("could not link the metadata namespace to the node")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m agentfleet.dev.localenv.metadata <address> <port>")
        return 2
    address, port = argv[1], int(argv[2])
    move_into_own_namespace(address)
    server = _Server((address, port), _Handler)
    print(f"serving stand-in metadata on {address}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
