//! The `vhost-user-spice` daemon: parse the command line, build the parts, run.

fn main() {
    eprintln!("vhost-user-spice: not built yet");
    std::process::exit(1);
}
