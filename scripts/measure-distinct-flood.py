#!/usr/bin/env python3
"""Distinct cold names against a stalling upstream: the proxy's memory, descriptors and temporary files.

Starts an origin over N sparse files, a relay in front of it that passes the first STALL_AFTER bytes of each
connection's answers and then stops reading (an upstream that sends a little and stalls), and a proxy whose
upstream is the relay. Then N connections ask the proxy for N different names at once, and the proxy's peak RSS
(VmHWM), open descriptors and bytes of temporary files are sampled for HOLD seconds. Loopback only; everything it
starts is stopped at the end.

usage: scripts/measure-distinct-flood.py [--names 200] [--hold 8] [--proxy-dll PATH] [--server-dll PATH] [--max-fills N]
"""
import argparse, asyncio, os, shutil, signal, socket, struct, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    return s


def get_frame(name):
    n = name.encode()
    payload = struct.pack(">H", len(n)) + n + struct.pack(">QQH", 0, 0xFFFFFFFFFFFFFFFF, 0)
    return b"FP\x01\x01" + struct.pack(">I", len(payload)) + payload


async def relay(listener, target_port, stall_after, stop):
    async def serve(reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return

        async def pump(src, dst, limit):
            passed = 0
            while not stop.is_set():
                data = await src.read(65536)
                if not data:
                    break
                if limit is not None and passed + len(data) > limit:
                    data = data[: max(0, limit - passed)]
                    dst.write(data)
                    await dst.drain()
                    await stop.wait()  # stall: read nothing more
                    return
                passed += len(data)
                dst.write(data)
                await dst.drain()

        await asyncio.gather(pump(reader, up_w, None), pump(up_r, writer, stall_after), return_exceptions=True)
        for w in (writer, up_w):
            w.close()

    server = await asyncio.start_server(serve, sock=listener)
    return server


def sample(pid, cache):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    hwm = int(status["VmHWM"].split()[0]) * 1024
    rss = int(status["VmRSS"].split()[0]) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    tmp = 0
    for dirpath, _, files in os.walk(cache):
        for fn in files:
            try:
                tmp += os.stat(os.path.join(dirpath, fn)).st_blocks * 512
            except FileNotFoundError:
                pass
    return rss, hwm, fds, tmp


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=int, default=200)
    ap.add_argument("--hold", type=float, default=8)
    ap.add_argument("--stall-after", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--file-mib", type=int, default=16)
    ap.add_argument("--server-dll", default=f"{ROOT}/src/FileProxy.Server/bin/Release/net10.0/FileProxy.Server.dll")
    ap.add_argument("--proxy-dll", default=f"{ROOT}/src/FileProxy.Proxy/bin/Release/net10.0/FileProxy.Proxy.dll")
    ap.add_argument("--proxy-args", default="")
    a = ap.parse_args()
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)  # relay tasks cut at the end

    work = tempfile.mkdtemp(prefix="fileproxy-flood-")
    root, cache = os.path.join(work, "root"), os.path.join(work, "cache")
    os.makedirs(root)
    for i in range(a.names):
        with open(os.path.join(root, f"n{i}.bin"), "wb") as f:
            f.truncate(a.file_mib * 1024 * 1024)  # sparse: cheap to make, hashes fast
    procs = []
    stop = asyncio.Event()
    try:
        origin_sock, relay_sock, proxy_sock = free_port_socket(), free_port_socket(), free_port_socket()
        # The programs bind their own ports; ours only find free ones and keep them until the child binds.
        origin_port = origin_sock.getsockname()[1]; origin_sock.close()
        proxy_port = proxy_sock.getsockname()[1]; proxy_sock.close()
        relay_port = relay_sock.getsockname()[1]
        log = open(os.path.join(work, "log.txt"), "w")
        procs.append(subprocess.Popen(["dotnet", a.server_dll, "--root", root, "--port", str(origin_port), "--listen", "127.0.0.1", "--log-level", "Warning"], stdout=log, stderr=log))
        await relay(relay_sock, origin_port, a.stall_after, stop)
        proxy = subprocess.Popen(["dotnet", a.proxy_dll, "127.0.0.1", str(relay_port), str(proxy_port), "--listen", "127.0.0.1",
                                  "--cache-dir", cache, "--log-level", "Warning", *a.proxy_args.split()], stdout=log, stderr=log)
        procs.append(proxy)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", proxy_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", origin_port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        idle = sample(proxy.pid, cache)
        conns = []
        for i in range(a.names):
            r, w = await asyncio.open_connection("127.0.0.1", proxy_port)
            w.write(get_frame(f"n{i}.bin"))
            conns.append((r, w))

        async def drain(r):
            try:
                while await r.read(1 << 20):
                    pass
            except OSError:
                pass

        readers = [asyncio.create_task(drain(r)) for r, _ in conns]
        peak = idle
        end = time.time() + a.hold
        while time.time() < end:
            s = sample(proxy.pid, cache)
            peak = tuple(max(x, y) for x, y in zip(peak, s))
            await asyncio.sleep(0.2)
        print(f"names {a.names}, upstream stalls after {a.stall_after} bytes, held {a.hold} s, proxy {os.path.relpath(a.proxy_dll, ROOT)} {a.proxy_args}")
        print(f"idle: RSS {idle[0] / 2**20:.1f} MiB, {idle[2]} descriptors")
        print(f"peak: RSS {peak[1] / 2**20:.1f} MiB (VmHWM), {peak[2]} descriptors, {peak[3] / 2**20:.1f} MiB of cache files")
        stop.set()
        for t in readers:
            t.cancel()
        for _, w in conns:
            w.close()
    finally:
        stop.set()
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


asyncio.run(main())
