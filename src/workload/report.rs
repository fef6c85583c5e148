//! The benchmark's JSON summary: the fields of spice-ref-server's summary that make sense for
//! our daemon, with the same names and units, so the kit's bench.py reads both alike.
#![forbid(unsafe_code)]

use std::fmt::Write;

use super::cpu::{ThreadCpu, Usage};
use super::pacer::PacerStats;
use super::{Workload, WorkloadConfig};

/// Name of the display worker thread (`display::handle::spawn`): our counterpart of
/// spice-server's "SPICE Worker".
pub const WORKER_THREAD: &str = "display-worker";

/// A flat JSON object written field by field, in order.
#[derive(Debug, Default)]
pub struct JsonObject {
    fields: Vec<(String, String)>,
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `v` with `decimals` digits; JSON has no NaN or infinity, so those become `null`.
pub fn json_f64(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "null".to_owned()
    }
}

impl JsonObject {
    pub fn raw(&mut self, key: &str, value: String) -> &mut Self {
        self.fields.push((key.to_owned(), value));
        self
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.raw(key, json_str(value))
    }

    pub fn int(&mut self, key: &str, value: impl Into<i128>) -> &mut Self {
        self.raw(key, value.into().to_string())
    }

    pub fn float(&mut self, key: &str, value: f64, decimals: usize) -> &mut Self {
        self.raw(key, json_f64(value, decimals))
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.raw(key, value.to_string())
    }

    /// One line, as `--frame-hash` prints.
    pub fn line(&self) -> String {
        let body: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{}: {v}", json_str(k)))
            .collect();
        format!("{{{}}}", body.join(", "))
    }

    /// One line without spaces, as spice-ref-server's stderr events (bench.py looks for
    /// `"event":"listening"` literally).
    pub fn compact(&self) -> String {
        let body: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", json_str(k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    /// One field a line, as the run summary prints.
    pub fn pretty(&self) -> String {
        let body: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("  {}: {v}", json_str(k)))
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    }
}

/// Everything a run measured.
#[derive(Debug)]
pub struct RunReport<'a> {
    pub cfg: &'a WorkloadConfig,
    pub image_compression: &'a str,
    pub t_start: f64,
    pub t_end: f64,
    pub usage_start: Usage,
    pub usage_end: Usage,
    /// Each thread's CPU over the window (`cpu::thread_deltas`).
    pub threads: &'a [ThreadCpu],
    pub pacer: &'a PacerStats,
    /// Command memory the producer still had lent to the daemon at the end.
    pub inflight_bytes_end: usize,
    pub display_clients_end: usize,
    pub display_clients_max: usize,
    pub pid: i32,
}

impl RunReport<'_> {
    pub fn to_json(&self) -> JsonObject {
        let cfg = self.cfg;
        let p = self.pacer;
        let wall = self.t_end - self.t_start;
        let per_s = |v: f64| if wall > 0.0 { v / wall } else { 0.0 };
        let user = self.usage_end.user_s - self.usage_start.user_s;
        let sys = self.usage_end.sys_s - self.usage_start.sys_s;
        let server = user + sys - p.gen_cpu_s;
        let worker: f64 = self
            .threads
            .iter()
            .filter(|t| t.name == WORKER_THREAD)
            .map(|t| t.cpu_s)
            .sum();
        let main_thread = self
            .threads
            .iter()
            .find(|t| t.tid == self.pid)
            .map_or(0.0, |t| t.cpu_s);
        let threads: Vec<String> = self
            .threads
            .iter()
            .map(|t| {
                format!(
                    "{{\"tid\": {}, \"name\": {}, \"cpu_s\": {:.2}}}",
                    t.tid,
                    json_str(&t.name),
                    t.cpu_s
                )
            })
            .collect();
        let mut j = JsonObject::default();
        j.str("tool", "vus-bench")
            .str("version", env!("CARGO_PKG_VERSION"))
            .str("workload", cfg.workload.name())
            .float("fps", cfg.fps, 3)
            .int("width", cfg.width)
            .int("height", cfg.height)
            .int("seed", cfg.seed);
        if matches!(cfg.workload, Workload::Video | Workload::Office) {
            j.str("video_size", &format!("{}x{}", cfg.video.0, cfg.video.1));
        }
        j.str("image_compression", self.image_compression)
            .str("streaming_video", "off")
            .bool("allow_mc", true)
            .bool("workload_started", true)
            .float("t_start", self.t_start, 3)
            .float("t_end", self.t_end, 3)
            .float("wall_s", wall, 3)
            .float("cpu_user_s", user, 3)
            .float("cpu_sys_s", sys, 3)
            .float("cpu_total_s", user + sys, 3)
            .float("guest_gen_cpu_s", p.gen_cpu_s, 3)
            .float("server_cpu_s", server, 3)
            .float("server_cpu_per_s", per_s(server), 4)
            .int("frames", p.frames)
            .int("late_frames", p.late_frames)
            .int("commands_produced", p.commands_produced)
            .int("cursor_commands_produced", p.cursor_commands_produced)
            .int("dropped_ring_full", 0u8)
            .int("dropped_oom", p.dropped_busy)
            .int("pixels_produced", p.pixels_produced)
            .int("bitmap_bytes_produced", p.bitmap_bytes_produced)
            .int("inflight_bytes_end", self.inflight_bytes_end as u64)
            .int("inflight_bytes_peak", p.held_bytes_peak as u64)
            .int("max_rss_kb", self.usage_end.max_rss_kb)
            .float("commands_per_s", per_s(p.commands_produced as f64), 2)
            .float("worker_cpu_s", worker, 2)
            .float("worker_cpu_per_s", per_s(worker), 3)
            .float("main_thread_cpu_s", main_thread, 2)
            .raw("threads", format!("[{}]", threads.join(", ")))
            .int("display_clients_end", self.display_clients_end as u64)
            .int("display_clients_max", self.display_clients_max as u64);
        match &p.error {
            Some(e) => j.str("generator_error", e),
            None => j.raw("generator_error", "null".to_owned()),
        };
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        assert_eq!(json_f64(f64::NAN, 2), "null");
    }

    #[test]
    fn events_are_compact_like_spice_ref_server() {
        let mut j = JsonObject::default();
        j.str("event", "listening").int("port", 5900u16);
        assert_eq!(j.compact(), r#"{"event":"listening","port":5900}"#);
        assert_eq!(j.line(), r#"{"event": "listening", "port": 5900}"#);
    }

    #[test]
    fn server_cpu_leaves_out_the_generator() {
        let cfg = WorkloadConfig::new(Workload::Video);
        let pacer = PacerStats {
            gen_cpu_s: 0.5,
            commands_produced: 300,
            ..PacerStats::default()
        };
        let threads = [ThreadCpu {
            tid: 7,
            name: WORKER_THREAD.to_owned(),
            cpu_s: 1.0,
        }];
        let r = RunReport {
            cfg: &cfg,
            image_compression: "lz4",
            t_start: 100.0,
            t_end: 110.0,
            usage_start: Usage::default(),
            usage_end: Usage {
                user_s: 1.5,
                sys_s: 0.5,
                max_rss_kb: 1000,
            },
            threads: &threads,
            pacer: &pacer,
            inflight_bytes_end: 0,
            display_clients_end: 1,
            display_clients_max: 1,
            pid: 1,
        }
        .to_json()
        .pretty();
        assert!(r.contains("\"server_cpu_s\": 1.500"), "{r}");
        assert!(r.contains("\"server_cpu_per_s\": 0.1500"), "{r}");
        assert!(r.contains("\"worker_cpu_per_s\": 0.100"), "{r}");
        assert!(r.contains("\"commands_per_s\": 30.00"), "{r}");
        assert!(r.contains("\"video_size\": \"640x360\""), "{r}");
    }
}
