//! The floor under any server that sends raw pixels over TCP: the sender's CPU per byte for
//! large writes to a reader in another process over loopback (what the kernel charges the
//! server for each client's copy of the bytes, whatever the server does in user space).
//! `cargo bench --bench tcp_floor`; README "Performance" compares it with the raw targets.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

/// Bytes sent per write: a 640x360 and a 1920x1080 frame of 24-bit pixels.
const WRITE_SIZES: [usize; 2] = [640 * 360 * 3, 1920 * 1080 * 3];
const TOTAL: usize = 2_000_000_000;

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn read_all(addr: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect to the sender");
    let mut buf = vec![0u8; 1 << 20];
    while stream.read(&mut buf).expect("read") > 0 {}
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--read") {
        return read_all(&args[i + 1]);
    }
    for size in WRITE_SIZES {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let exe = std::env::current_exe().expect("own path");
        let mut reader = Command::new(exe)
            .args(["--read", &addr])
            .spawn()
            .expect("reader");
        let (mut stream, _) = listener.accept().expect("accept");
        let data = vec![7u8; size];
        let cpu0 = thread_cpu_seconds();
        let mut sent = 0;
        while sent < TOTAL {
            stream.write_all(&data).expect("write");
            sent += size;
        }
        let ns_per_byte = (thread_cpu_seconds() - cpu0) * 1e9 / sent as f64;
        drop(stream);
        reader.wait().expect("reader exit");
        println!(
            "writes of {size} bytes: {ns_per_byte:.3} ns sender CPU per byte = {:.3} ns per 24-bit pixel, {:.3} per 32-bit pixel",
            ns_per_byte * 3.0,
            ns_per_byte * 4.0
        );
    }
}
