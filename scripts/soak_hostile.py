# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile QMP input for the soak campaign: what to send, and a raw client that checks every reply.

No input may stop, quit or migrate the VM: the commands used only query or set
parameters, so a broken reply or a dead VM is the server's fault.
"""
import json
import random
import socket
import time

NOT_JSON = ['010', '0x10', '.5', '1.', '-', '+1', '1e', '1e+', '-01', 'Infinity', 'NaN',
            'nan', 'True', "'x'", 'nul', 'null1', '0b1', '1_000', '"\\x41"', '"\\u12"',
            '"\\uD800"', '"a\tb"']
WIDE = ['18446744073709551616', '18446744073709551615', '9223372036854775808',
        '-9223372036854775809', '-9223372036854775808', '1e400', '-1e400', '-1', '1.5',
        '1e3', '"1"', 'null', '[]', '{}', 'true', '340282366920938463463374607431768211456']
IDS = ['18446744073709551616', '9223372036854775808', '1e400', '"a\\u0000b"', '-0', '1.50',
       '"\\ud83d\\ude00"', '[1, {"id": 2}]', '{"k": [null, true, 1e-400]}', '""',
       '"\\u00e9\\/"', '0.000000000000000000001', '{}', '[]']
COMMANDS = ['query-status', 'query-migrate', 'query-migrate-parameters',
            'query-migrate-capabilities', 'query-version', 'query-commands', 'query-kvm']
PARAMS = ['max-bandwidth', 'downtime-limit', 'background-snapshot-buffer-size',
          'background-snapshot-buffer-keep']
STRUCTURE = [b'{', b'}', b']', b'[1,]', b'{"a": 1,}', b'{"a" 1}', b'{a: 1}', b'[1 2]',
             b'{"a": 1, "a": 2}', b'{"execute": "query-status", "execute": "query-kvm"}',
             b'{} {} []', b'"just a string"', b'42', b'null', b'[{"execute": "query-status"}]',
             b'{"execute": 5}', b'{"execute": "query-status", "arguments": []}',
             b'{"execute": "query-status", "foo": 1}', b'{"arguments": {}}',
             b'\xef\xbb\xbf{"execute": "query-status"}', b'\xff\xfe', b'\xc0\x80',
             b'{"execute": "query-status\x00"}', b'\x00\x00\x00', b'\x1b[2J',
             b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}',
             b'{"execute": "human-monitor-command", "arguments": {"command-line": "info status",'
             b' "cpu-index": 9223372036854775808}}',
             b'{"execute": "human-monitor-command", "arguments": {"command-line": "\\u0000"}}',
             b'{"execute": "migrate-set-capabilities", "arguments": {"capabilities": '
             b'[{"capability": "x\\u0000y", "state": true}]}}',
             b'{"execute": "migrate-set-capabilities", "arguments": {"capabilities": '
             b'[{"capability": "xbzrle", "state": 1}]}}']


def _request(rng):
    kind = rng.randrange(4)
    cmd = rng.choice(COMMANDS)
    if kind == 0:
        return f'{{"execute": "{cmd}", "id": {rng.choice(NOT_JSON)}}}'.encode()
    if kind == 1:
        return (f'{{"execute": "migrate-set-parameters", "arguments": '
                f'{{"{rng.choice(PARAMS)}": {rng.choice(WIDE)}}}}}').encode()
    if kind == 2:
        return f'{{"execute": "{cmd}", "id": {rng.choice(IDS)}}}'.encode()
    return rng.choice(STRUCTURE)


def _mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(data) + 1)
        op = rng.randrange(3)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice([b'{', b'}', b'"', b'\\', b',', b'010', b'\xff', b'\n'])
        else:
            del data[at:at + rng.randrange(1, 8)]
    return bytes(data)


def hostile_inputs(rng, n):
    """n inputs (bytes without a final newline): templates, and mutations of them."""
    out = []
    for i in range(n):
        data = _request(rng)
        if rng.random() < 0.3:
            data = _mutate(rng, data)
        out.append(data)
    return out


# Larger cases, once per batch: over 1 MiB on one line, nesting 2000 deep.
def big_inputs():
    return [b'{"execute": "' + b'a' * ((1 << 20) + 4096) + b'"}',
            b'[' * 2000 + b']' * 2000]


class RawClient:
    """A negotiated QMP connection that reads replies as sent and checks their form."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(timeout)
        self.buf = b''
        self.probe = 0
        self.line()  # greeting
        self.sock.sendall(b'{"execute": "qmp_capabilities"}\n')
        if 'return' not in json.loads(self.line()):
            raise RuntimeError('negotiation failed')

    def line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.sock.gettimeout())
        while b'\n' not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError('the server closed the connection')
            self.buf += chunk
        raw, self.buf = self.buf.split(b'\n', 1)
        return raw

    def exchange(self, data, wait=1.0):
        """Send data, then a probe; (problems, answered): every reply before the probe's
        must be one JSON object with exactly one of return and error (or an event)."""
        self.probe += 1
        tag = f'probe-{self.probe}'
        self.sock.sendall(data + b'\n' + json.dumps(
            {'execute': 'query-status', 'id': tag}).encode() + b'\n')
        problems = []
        while True:
            try:
                raw = self.line(wait)
            except socket.timeout:
                # An unterminated string or object swallowed the probe: as in QEMU.
                return problems, False
            try:
                reply = json.loads(raw)
            except ValueError as e:
                problems.append(f'reply is not JSON ({e}): {raw[:200]!r}')
                continue
            if not isinstance(reply, dict):
                problems.append(f'reply is not an object: {raw[:200]!r}')
            elif 'event' in reply:
                continue
            elif ('return' in reply) == ('error' in reply):
                problems.append(f'reply has not exactly one of return/error: {raw[:200]!r}')
            elif reply.get('id') == tag:
                status = reply.get('return', {}).get('status')
                if status != 'running':
                    problems.append(f'probe: status {status!r}, not running')
                return problems, True

    def close(self):
        self.sock.close()
