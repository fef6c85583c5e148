//! Several real spice-gtk clients (tests/tools/spice_client.py) at once: each is a full
//! session that converges to exactly the guest's pixels, a client joining while the guest
//! draws gets the current screen, one vanishing changes nothing for the others, images are
//! encoded once for all, and the input policy decides whose keys reach the guest.

mod spice_support;

use std::time::Duration;

use serde_json::json;
use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::guest::{InputClientId, InputEvent};
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::InputPolicy;
use vhost_user_spice::spice::SpiceConfig;

const W: u32 = 400;
const H: u32 = 300;

async fn rig_with(input: InputPolicy) -> Rig {
    let rig = start_with(SpiceConfig {
        listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )],
        input,
        ..SpiceConfig::new(Ticketing::Disabled)
    })
    .await;
    rig.guest.create_primary(W, H);
    rig.guest
        .draw(Rect::ltrb(0, 0, W as i32, H as i32), pattern(W, H, 1));
    rig.guest.sync();
    rig
}

async fn joined(rig: &Rig) -> PyClient {
    let mut c = PyClient::connect(rig.port, None).await;
    c.wait_event("mark").await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_clients_converge_one_joins_mid_stream_and_an_abrupt_drop_changes_nothing() {
    if !have_python_client() {
        return;
    }
    let rig = rig_with(InputPolicy::All).await;
    let mut a = joined(&rig).await;
    let mut b = joined(&rig).await;
    let mut c = joined(&rig).await;
    let want = rig.guest.primary_rgb();
    for client in [&mut a, &mut b, &mut c] {
        assert_same_picture(&client.dump(200).await, &want);
    }

    // The guest keeps drawing while `d` joins.
    let mut d = PyClient::connect(rig.port, None).await;
    for seed in 0..60u32 {
        let x = (seed * 37) % (W - 80);
        let y = (seed * 23) % (H - 60);
        rig.guest.draw(
            Rect::ltrb(x as i32, y as i32, x as i32 + 80, y as i32 + 60),
            pattern(80, 60, seed + 10),
        );
        if seed == 20 {
            rig.guest.sync();
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    rig.guest.sync();
    d.wait_event("mark").await;
    assert!(wait_until(|| rig.server.client_count() == 4).await);
    let want = rig.guest.primary_rgb();
    for client in [&mut a, &mut b, &mut c, &mut d] {
        assert_same_picture(&client.dump(300).await, &want);
    }
    let stats = rig.server.client_stats();
    assert_eq!(stats.len(), 4);
    for s in &stats {
        let display = s.display.expect("every client has its display linked");
        assert!(display.pipe.draws > 0, "{s:?}");
        assert!(s.input_allowed);
    }
    let cache = rig.server.image_cache_stats();
    eprintln!("per-client stats: {stats:#?}\nimage cache: {cache:?}");
    if stats.iter().all(|s| s.display.is_some_and(|d| d.lz4)) {
        assert!(cache.hits > 0, "clients in step share encodings: {cache:?}");
    }

    // `b` vanishes without a word; the others go on as before.
    b.kill().await;
    for seed in 0..10u32 {
        rig.guest.draw(
            Rect::ltrb(seed as i32 * 30, 10, seed as i32 * 30 + 50, 200),
            pattern(50, 190, seed + 100),
        );
    }
    rig.guest.sync();
    let want = rig.guest.primary_rgb();
    for client in [&mut a, &mut c, &mut d] {
        assert_same_picture(&client.dump(300).await, &want);
    }
    assert!(wait_until(|| rig.server.client_count() == 3).await);
    assert_eq!(rig.server.client_stats().len(), 3);
    rig.server.shutdown().await;
}

/// Keys the sink saw, by client.
fn keys_from(rig: &Rig, id: InputClientId) -> Vec<u16> {
    rig.sink
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(c, e)| match e {
            InputEvent::Key {
                scancode,
                pressed: true,
            } if *c == id => Some(*scancode),
            _ => None,
        })
        .collect()
}

fn clients_seen(rig: &Rig) -> Vec<InputClientId> {
    let mut ids: Vec<InputClientId> = rig
        .sink
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|(c, _)| *c)
        .collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_first_lets_only_the_longest_connected_client_type_and_passes_on() {
    if !have_python_client() {
        return;
    }
    let rig = rig_with(InputPolicy::First).await;
    let mut first = joined(&rig).await;
    let mut viewer = joined(&rig).await;
    for c in [&mut first, &mut viewer] {
        c.wait_for("inputs open", |e| {
            e["event"] == "modifiers" || (e["event"] == "mouse-mode" && e["mode"] == 2)
        })
        .await;
    }
    let stats = rig.server.client_stats();
    let (first_id, viewer_id) = (
        InputClientId(u64::from(stats[0].session_id)),
        InputClientId(u64::from(stats[1].session_id)),
    );
    assert!(stats[0].input_allowed && !stats[1].input_allowed);

    viewer.send(json!({"cmd": "key", "scancode": 0x1e})).await;
    viewer
        .wait_for("viewer key sent", |e| e["event"] == "sent")
        .await;
    first.send(json!({"cmd": "key", "scancode": 0x30})).await;
    assert!(wait_until(|| keys_from(&rig, first_id) == [0x30]).await);
    // The viewer's key went out before the first client's, on its own connection: give it
    // a moment more, then it must still be absent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        clients_seen(&rig),
        [first_id],
        "only the first client typed"
    );

    // The first client leaves: the viewer is now the longest connected and types.
    first.kill().await;
    assert!(wait_until(|| rig.server.client_count() == 1).await);
    assert!(rig.server.client_stats()[0].input_allowed);
    viewer.send(json!({"cmd": "key", "scancode": 0x2e})).await;
    assert!(wait_until(|| keys_from(&rig, viewer_id) == [0x2e]).await);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_none_makes_every_client_a_viewer() {
    if !have_python_client() {
        return;
    }
    let rig = rig_with(InputPolicy::None).await;
    let mut c = joined(&rig).await;
    c.wait_for("agent", |e| e["event"] == "agent" && e["connected"] == true)
        .await;
    c.send(json!({"cmd": "key", "scancode": 0x1e})).await;
    c.send(json!({"cmd": "position", "x": 10, "y": 20, "buttons": 0}))
        .await;
    c.send(json!({"cmd": "resize", "width": 1024, "height": 768}))
        .await;
    c.wait_for("resize sent", |e| {
        e["event"] == "sent" && e["cmd"] == "resize"
    })
    .await;
    // The screen still reaches the viewer.
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.sink.events(), [], "no input from a viewer");
    assert!(rig.control.requests().is_empty(), "no resize from a viewer");
    assert!(!rig.server.client_stats()[0].input_allowed);
    rig.server.shutdown().await;
}
