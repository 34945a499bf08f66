//! What the benchmarks share: their command line.

/// How a benchmark was started: `cargo bench` passes `--bench`; `cargo test` runs benchmarks too,
/// as quick smoke runs that check they work without taking minutes or overwriting the numbers.
pub struct Run {
    /// Started by `cargo bench`: full size, numbers written under `target/bench/`.
    pub bench_mode: bool,
    /// Residents to generate (`--patients N`, else `full` or `smoke`).
    pub patients: usize,
}

impl Run {
    /// Reads the command line.
    pub fn from_args(full: usize, smoke: usize) -> Run {
        let args: Vec<String> = std::env::args().collect();
        let bench_mode = args.iter().any(|a| a == "--bench");
        let patients = args
            .iter()
            .position(|a| a == "--patients")
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(if bench_mode { full } else { smoke });
        Run { bench_mode, patients }
    }
}
