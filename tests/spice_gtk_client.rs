//! A spice-gtk client (our scripted tests/tools/spice_client.py) against the server: it sees
//! the guest's pixels, incremental updates, the cursor, and its keys, pointer and resize
//! requests reach the guest side.

mod spice_support;

use serde_json::json;
use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::guest::{HeadRequest, InputEvent};
use vhost_user_spice::spice::ticket::Ticketing;

async fn connected(rig: &Rig) -> Option<PyClient> {
    if !have_python_client() {
        return None;
    }
    let mut c = PyClient::connect(rig.port, Some("pw")).await;
    c.wait_event("primary").await;
    c.wait_event("mark").await;
    Some(c)
}

async fn rig() -> Rig {
    let rig = start(password("pw")).await;
    rig.guest.create_primary(400, 300);
    rig.guest
        .draw(Rect::ltrb(0, 0, 400, 300), pattern(400, 300, 3));
    rig.guest.sync();
    rig
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_primary_equals_guest_pixels_and_updates_only_the_drawn_rect() {
    let rig = rig().await;
    let Some(mut c) = connected(&rig).await else {
        return;
    };
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());

    let before = c
        .events
        .iter()
        .filter(|e| e["event"] == "invalidate")
        .count() as u64;
    rig.guest
        .draw(Rect::ltrb(30, 40, 130, 90), pattern(100, 50, 9));
    rig.guest.sync();
    let inv = c
        .wait_for("second frame", |e| {
            e["event"] == "invalidate" && e["n"].as_u64() > Some(before)
        })
        .await;
    assert_eq!(
        (&inv["x"], &inv["y"], &inv["w"], &inv["h"]),
        (&json!(30), &json!(40), &json!(100), &json!(50))
    );
    assert_same_picture(&c.dump(300).await, &rig.guest.primary_rgb());
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_shape_and_moves_reach_the_client() {
    let rig = rig().await;
    let Some(mut c) = connected(&rig).await else {
        return;
    };
    rig.guest.cursor_set(24, 20, 3, 5, 100, 100);
    let set = c.wait_event("cursor-set").await;
    assert_eq!(
        (&set["width"], &set["height"], &set["hot_x"], &set["hot_y"]),
        (&json!(24), &json!(20), &json!(3), &json!(5))
    );
    rig.guest.cursor_move(150, 120);
    let mv = c.wait_event("cursor-move").await;
    assert_eq!((&mv["x"], &mv["y"]), (&json!(150), &json!(120)));
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_mouse_reach_the_input_sink() {
    let rig = rig().await;
    let Some(mut c) = connected(&rig).await else {
        return;
    };
    c.wait_for("client mouse mode", |e| {
        e["event"] == "mouse-mode" && e["mode"] == 2
    })
    .await;
    c.send(json!({"cmd": "key", "scancode": 0x1e})).await;
    c.send(json!({"cmd": "key", "scancode": 0x148})).await;
    c.send(json!({"cmd": "position", "x": 123, "y": 45, "buttons": 0}))
        .await;
    c.send(json!({"cmd": "press", "button": 1, "buttons": 1}))
        .await;
    c.send(json!({"cmd": "release", "button": 1, "buttons": 0}))
        .await;
    c.wait_for("release sent", |e| {
        e["event"] == "sent" && e["cmd"] == "release"
    })
    .await;
    let expected = [
        InputEvent::Key {
            scancode: 0x1e,
            pressed: true,
        },
        InputEvent::Key {
            scancode: 0x1e,
            pressed: false,
        },
        InputEvent::Key {
            scancode: 0x148,
            pressed: true,
        },
        InputEvent::Key {
            scancode: 0x148,
            pressed: false,
        },
        InputEvent::PointerPosition { x: 123, y: 45 },
        InputEvent::Buttons { mask: 1 },
        InputEvent::Buttons { mask: 0 },
    ];
    let ok = wait_until(|| {
        let ev = rig.sink.events();
        let mut it = ev.iter();
        expected.iter().all(|want| it.any(|got| got == want))
    })
    .await;
    assert!(ok, "{:?}", rig.sink.events());

    // The guest's lock LEDs reach the client; its leaving releases what it held.
    rig.sink.leds.send_replace(4);
    c.wait_for("caps lock LED", |e| {
        e["event"] == "modifiers" && e["value"] == 4
    })
    .await;
    c.kill().await;
    assert!(wait_until(|| !rig.sink.released.lock().unwrap().is_empty()).await);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_request_reaches_display_control() {
    let rig = rig().await;
    let Some(mut c) = connected(&rig).await else {
        return;
    };
    c.wait_for("agent", |e| e["event"] == "agent" && e["connected"] == true)
        .await;
    c.send(json!({"cmd": "resize", "width": 1024, "height": 768}))
        .await;
    let ok = wait_until(|| {
        rig.control.requests().iter().any(|r| {
            r.first()
                == Some(&HeadRequest {
                    x: 0,
                    y: 0,
                    width: 1024,
                    height: 768,
                })
        })
    })
    .await;
    assert!(ok, "{:?} / {:?}", rig.control.requests(), c.events);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converge_and_one_dropping_changes_nothing_for_the_other() {
    let rig = start(Ticketing::Disabled).await;
    rig.guest.create_primary(320, 240);
    rig.guest
        .draw(Rect::ltrb(0, 0, 320, 240), pattern(320, 240, 4));
    rig.guest.sync();
    if !have_python_client() {
        return;
    }
    let mut a = PyClient::connect(rig.port, None).await;
    let mut b = PyClient::connect(rig.port, None).await;
    a.wait_event("mark").await;
    b.wait_event("mark").await;
    assert_eq!(rig.server.client_count(), 2);
    rig.guest
        .draw(Rect::ltrb(10, 10, 200, 100), pattern(190, 90, 5));
    rig.guest.sync();
    assert_same_picture(&a.dump(300).await, &rig.guest.primary_rgb());
    assert_same_picture(&b.dump(300).await, &rig.guest.primary_rgb());

    a.kill().await;
    rig.guest
        .draw(Rect::ltrb(50, 60, 300, 200), pattern(250, 140, 6));
    rig.guest.sync();
    assert_same_picture(&b.dump(300).await, &rig.guest.primary_rgb());
    assert!(wait_until(|| rig.server.client_count() == 1).await);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_change_reaches_the_client_with_exact_pixels() {
    let rig = rig().await;
    let Some(mut c) = connected(&rig).await else {
        return;
    };
    rig.guest.create_primary(640, 400);
    rig.guest
        .draw(Rect::ltrb(0, 0, 640, 400), pattern(640, 400, 8));
    rig.guest.sync();
    c.wait_for("new primary", |e| {
        e["event"] == "primary" && e["width"] == 640
    })
    .await;
    assert_same_picture(&c.dump(300).await, &rig.guest.primary_rgb());
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_clients_see_the_screen() {
    if !have_python_client() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spice.sock");
    let rig = start_with(vhost_user_spice::spice::SpiceConfig {
        listeners: vec![vhost_user_spice::spice::ListenerSpec::unix(&path)],
        ..vhost_user_spice::spice::SpiceConfig::new(Ticketing::Disabled)
    })
    .await;
    rig.guest.create_primary(200, 100);
    rig.guest
        .draw(Rect::ltrb(0, 0, 200, 100), pattern(200, 100, 9));
    rig.guest.sync();
    let host = format!("unix:{}", path.display());
    let mut c = PyClient::connect_to(&host, 0, None).await;
    c.wait_event("mark").await;
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());
    rig.server.shutdown().await;
    assert!(!path.exists(), "the socket file is removed at shutdown");
}
