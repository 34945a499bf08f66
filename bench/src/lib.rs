//! The benchmarks and the network lab: the link emulator ([`link`]: a TUN delay line in a private
//! network namespace), a seeded consortium workload ([`workload`]), the proof against
//! automerge-repo over emulated bad links ([`proof`]), the relay under 1,000 phones ([`load`]) and
//! fault injection ([`faults`]). `scripts/bench` runs them; `scripts/test` their quick forms. They
//! are not built by `cargo test` of the other crates.

pub mod faults;
pub mod link;
pub mod load;
pub mod proof;
pub mod workload;
