//! The team's measuring client (spice-kit's spice-probe, on spice-gtk) against our server: it
//! links every channel we list, sees the primary, and its sniffer finds the message types and
//! image encodings we promise. The kit is not packaged; it lies in `shared/` beside the checkout
//! (as CI lays it out): without it this test only says so, and fails under `CI=true`.

mod spice_support;

use spice_support::*;
use tokio::process::Command;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;

/// spice-kit's probe, in the `shared/` folder beside the checkout.
fn probe_path() -> Option<std::path::PathBuf> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spice-kit/spice-probe");
    path.exists().then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spice_probe_links_every_channel_and_sees_lz4_images() {
    let probe = probe_path();
    if probe.is_none() || !have_python_client() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: spice-kit's spice-probe (../shared/spice-kit) or the spice-gtk Python client is missing"
        );
        eprintln!(
            "!!!!! SKIPPED: ../shared/spice-kit/spice-probe or the Python client not present"
        );
        return;
    }
    let probe = probe.expect("checked above");
    let rig = start(Ticketing::Disabled).await;
    rig.guest.create_primary(640, 480);
    rig.guest.fill(Rect::ltrb(0, 0, 640, 480), 0x0020_4060);
    rig.guest.sync();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("probe.json");
    let port = rig.port.to_string();
    let probe = Command::new(PYTHON)
        .arg(&probe)
        .args(["127.0.0.1", &port, "--duration", "1", "--sniff", "--json"])
        .arg(&json)
        .kill_on_drop(true)
        .output();
    // Some updates while the probe watches.
    let guest = &rig.guest;
    let draw = async {
        for i in 0..10 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            guest.fill(Rect::ltrb(i * 20, 10, i * 20 + 15, 40), 0x00ff_ff00);
        }
    };
    let (out, ()) = tokio::join!(tokio::time::timeout(WAIT, probe), draw);
    let out = out.unwrap().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        out.status.success(),
        "probe failed: {}\n{report:#}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["primary"]["width"], 640);
    let sniff = report["sniff"].as_array().unwrap();
    let display = sniff.iter().find(|c| c["channel"] == "display").unwrap();
    eprintln!("display channel as sniffed: {:#}", display["display"]);
    assert!(display["display"]["image_types"]["LZ4"].as_u64() > Some(0));
    let linked: Vec<_> = sniff
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    for ch in ["main", "display", "inputs", "cursor"] {
        assert!(linked.contains(&ch), "{ch} not linked: {linked:?}");
    }
    assert!(sniff
        .iter()
        .all(|c| c["link_error"].as_u64().unwrap_or(0) == 0));
    rig.server.shutdown().await;
}
