//! bench-harness: load generator and perf-regression gate (see issue 5).
fn main() -> anyhow::Result<()> {
    println!("bench-harness: not implemented yet");
    Ok(())
}
