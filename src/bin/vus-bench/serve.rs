//! The network side of the benchmark. Until the SPICE server is in the tree the benchmark
//! runs the QXL rings and the display worker alone, with no client: `--wait-clients` above 0
//! cannot be met.

use std::time::{Duration, Instant};

use vhost_user_spice::display::DisplayHandle;

use crate::{Args, WAIT_POLL};

pub struct Clients {
    port: u16,
}

impl Clients {
    pub fn start(args: &Args, _display: &DisplayHandle) -> Result<Self, String> {
        Ok(Self { port: args.port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn count(&self) -> usize {
        0
    }

    pub fn max_count(&self) -> usize {
        0
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(WAIT_POLL);
        }
        true
    }

    pub fn shutdown(self) {}
}
