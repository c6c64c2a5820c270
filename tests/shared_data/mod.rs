//! Where the tests that need the project's real data find it: `../shared/data` next to the
//! crate root. Such tests are `#[ignore = "needs ../shared/data"]`; CI runs them with
//! `--include-ignored` where the data exists, and there a missing folder is a failure, not a
//! silent pass.

use std::path::PathBuf;

/// `../shared/data` (or its `sub` folder); panics with what is missing when it is absent.
pub fn shared_data(sub: &str) -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")).join(sub);
    assert!(
        dir.is_dir(),
        "{} not found: this test needs the shared data (it is #[ignore]d; run it with \
         --include-ignored only where ../shared/data exists)",
        dir.display()
    );
    dir
}
