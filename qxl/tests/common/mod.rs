//! A consumer thread for tests: answers I/O and forwards everything it pops.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use qxl::{Command, Consumer, CursorCmd, IoRequest, ParseError};

#[derive(Debug)]
pub enum Event {
    Command(Result<Command, ParseError>),
    Cursor(Result<CursorCmd, ParseError>),
    Io(IoRequest),
}

pub struct Worker {
    pub events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Consumer>>,
}

impl Worker {
    pub fn spawn(mut consumer: Consumer) -> Worker {
        let (tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                consumer.wait(Duration::from_millis(20));
                while let Some(c) = consumer.pop_command() {
                    let _ = tx.send(Event::Command(c));
                }
                while let Some(c) = consumer.pop_cursor() {
                    let _ = tx.send(Event::Cursor(c));
                }
                while let Some(call) = consumer.take_io() {
                    let _ = tx.send(Event::Io(call.request.clone()));
                    call.complete(Ok(()));
                }
            }
            consumer
        });
        Worker {
            events,
            stop,
            handle: Some(handle),
        }
    }

    pub fn next(&self) -> Event {
        self.events
            .recv_timeout(Duration::from_secs(5))
            .expect("worker produced an event in time")
    }

    pub fn next_command(&self) -> Command {
        loop {
            match self.next() {
                Event::Command(c) => return c.expect("command parses"),
                Event::Io(_) => continue,
                Event::Cursor(c) => panic!("unexpected cursor {c:?}"),
            }
        }
    }

    pub fn next_cursor(&self) -> CursorCmd {
        loop {
            match self.next() {
                Event::Cursor(c) => return c.expect("cursor parses"),
                Event::Io(_) => continue,
                Event::Command(c) => panic!("unexpected command {c:?}"),
            }
        }
    }

    pub fn stop(mut self) -> Consumer {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A small device for tests.
pub fn small_config() -> qxl::DeviceConfig {
    qxl::DeviceConfig {
        ram_size: 8 << 20,
        vram_size: 4 << 20,
        n_surfaces: 64,
    }
}

/// Deterministic xRGB test pixels.
pub fn pattern(w: usize, h: usize, stride: usize, seed: u32) -> Vec<u8> {
    let mut v = vec![0u8; stride * h];
    for y in 0..h {
        for x in 0..w {
            let p = (x as u32).wrapping_mul(2654435761) ^ (y as u32).wrapping_mul(40503) ^ seed;
            v[y * stride + x * 4..y * stride + x * 4 + 4]
                .copy_from_slice(&(p & 0x00ff_ffff).to_le_bytes());
        }
    }
    v
}
