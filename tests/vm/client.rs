//! Drives `tests/tools/spice_client.py` (spice-gtk's SpiceClientGLib through its Python
//! binding) synchronously: JSON-line commands to its stdin, its JSON-line events from stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::ChildGuard;
use super::{workspace_root, PYTHON};

/// A running client, killed when dropped.
pub struct SpiceClient {
    child: ChildGuard,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Every event seen so far, in order.
    pub events: Vec<Value>,
}

impl SpiceClient {
    /// Starts the client against 127.0.0.1:`port`.
    pub fn connect(port: u16, password: Option<&str>) -> std::io::Result<SpiceClient> {
        let script = workspace_root().join("tests/tools/spice_client.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script)
            .args(["127.0.0.1", &port.to_string()])
            .args(password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let stdin = child.child_mut().stdin.take().expect("piped stdin");
        let stdout = child.child_mut().stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("spice-client-out".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            })?;
        Ok(SpiceClient {
            child,
            stdin,
            lines,
            events: Vec::new(),
        })
    }

    /// The first event (already seen or coming within `timeout`) satisfying `pred`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        if let Some(e) = self.events.iter().find(|e| pred(e)) {
            return Ok(e.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let event: Value = serde_json::from_str(&line)
                        .map_err(|e| format!("bad client line {line:?}: {e}"))?;
                    self.events.push(event.clone());
                    if pred(&event) {
                        return Ok(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no {what} within {timeout:?}; events: {:?}",
                        self.events
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait_timeout(Duration::from_secs(1));
                    return Err(format!(
                        "the client exited ({status:?}) before {what}; events: {:?}",
                        self.events
                    ));
                }
            }
        }
    }

    /// Sends one command (`{"cmd": ...}`).
    pub fn send(&mut self, cmd: Value) -> std::io::Result<()> {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.flush()
    }
}
