//! One full publish of a store that a `feedwerk build` filled, on its own (issue 16):
//! the publish stage of a cold build without the refresh before it, so its wall time,
//! syscalls (`strace -f -c`) and instructions (callgrind) can be measured alone.
//!
//! ```sh
//! cargo build --release --example publish_pass
//! # once: a cold build, and a copy of its store
//! feedwerk build --config DIR/config.toml && cp -a DIR/state DIR/state.built
//! # per run: the store as the build left it, no outputs
//! rm -rf DIR/state DIR/public && cp -a DIR/state.built DIR/state
//! target/release/examples/publish_pass DIR/config.toml
//! ```
//!
//! Forgets the fingerprint of the last publish, so every channel is rendered again, and
//! publishes into the (removed) output directory as `build` does ([`Mode::Files`]).
//! Prints `publish <seconds> <documents written>`.

use std::path::PathBuf;
use std::time::Instant;

use feedwerk::config::{Config, StoreLocation};
use feedwerk::publish::{self, Mode};
use feedwerk::store::{Store, PUBLISHED_CONFIG};

fn main() {
    let config = PathBuf::from(std::env::args().nth(1).expect("usage: publish_pass CONFIG"));
    let cfg = Config::load(&config).expect("config loads");
    let StoreLocation::Sqlite(path) = &cfg.store.location else {
        panic!("publish_pass measures a SQLite store");
    };
    let store = Store::open(path, &publish::authority(&cfg)).expect("store opens");
    store
        .set_meta(PUBLISHED_CONFIG, "")
        .expect("fingerprint forgotten");
    let now = chrono::Utc::now();
    let t = Instant::now();
    let (_, report) = publish::run(&cfg, &store, now, Mode::Files, None).expect("publishes");
    println!(
        "publish {:.3} {}",
        t.elapsed().as_secs_f64(),
        report.written.len()
    );
}
