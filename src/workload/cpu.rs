//! CPU and memory accounting for benchmarks, as spice-ref-server takes it: the calling
//! thread's CPU clock, the process's `getrusage`, and each thread's CPU from
//! `/proc/self/task/*/stat`.

use std::fs;

/// `CLOCK_THREAD_CPUTIME_ID` of the calling thread, in seconds (0 if the clock fails).
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that lives across the call; clock_gettime
    // only writes it (clock_gettime(2)). CLOCK_THREAD_CPUTIME_ID is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The process's resource usage (`getrusage(RUSAGE_SELF)`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub user_s: f64,
    pub sys_s: f64,
    /// Peak resident set size, KiB (`ru_maxrss`).
    pub max_rss_kb: i64,
}

impl Usage {
    pub fn now() -> Usage {
        // SAFETY: rusage is plain old data (integers and timevals); all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage for the call; getrusage only writes it
        // (getrusage(2)). RUSAGE_SELF is always valid.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        if rc != 0 {
            return Usage::default();
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Usage {
            user_s: tv(ru.ru_utime),
            sys_s: tv(ru.ru_stime),
            max_rss_kb: ru.ru_maxrss,
        }
    }

    pub fn total_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// One thread's CPU time so far (utime + stime, 10 ms ticks on most kernels).
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadCpu {
    pub tid: i32,
    pub name: String,
    pub cpu_s: f64,
}

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`).
fn clk_tck() -> f64 {
    // SAFETY: sysconf takes a constant name and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Parses a `/proc/PID/task/TID/stat` line: the name between the first `(` and the last `)`,
/// then utime and stime, the 12th and 13th fields after the `)`.
pub fn parse_stat(tid: i32, stat: &str, hz: f64) -> Option<ThreadCpu> {
    let (l, r) = (stat.find('(')?, stat.rfind(')')?);
    let name = stat.get(l + 1..r)?.to_owned();
    let mut fields = stat.get(r + 1..)?.split_ascii_whitespace().skip(11);
    let ut: u64 = fields.next()?.parse().ok()?;
    let st: u64 = fields.next()?.parse().ok()?;
    Some(ThreadCpu {
        tid,
        name,
        cpu_s: (ut + st) as f64 / hz,
    })
}

/// Every live thread of this process.
pub fn threads() -> Vec<ThreadCpu> {
    let hz = clk_tck();
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            parse_stat(tid, &stat, hz)
        })
        .collect()
}

/// CPU each thread in `end` used since `start` (all of it for threads born since).
pub fn thread_deltas(start: &[ThreadCpu], end: &[ThreadCpu]) -> Vec<ThreadCpu> {
    end.iter()
        .map(|t| {
            let before = start
                .iter()
                .find(|s| s.tid == t.tid)
                .map_or(0.0, |s| s.cpu_s);
            ThreadCpu {
                cpu_s: t.cpu_s - before,
                ..t.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_thread_name_with_spaces_and_parentheses() {
        let stat = "42 (display (w) 1) S 1 1 1 0 -1 4194368 10 0 0 0 150 50 0 0 20 0";
        let t = parse_stat(42, stat, 100.0).expect("parses");
        assert_eq!(t.name, "display (w) 1");
        assert!((t.cpu_s - 2.0).abs() < 1e-9);
    }

    #[test]
    fn thread_clock_advances_with_work() {
        let t0 = thread_cpu_s();
        let mut x = 1u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_s() > t0);
        assert!(Usage::now().max_rss_kb > 0);
        assert!(threads().iter().any(|t| t.tid > 0));
    }
}
