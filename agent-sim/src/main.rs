//! agent-sim: the AI-agent load simulator (issue 6). Not built yet: this
//! binary says so and exits non-zero rather than pretending to run.

fn main() {
    eprintln!(
        "agent-sim is not implemented yet (see the project's issue for the simulator).\n\
         The core engine is usable today: `cargo run -p beluga-metrics --example agent_loop`."
    );
    std::process::exit(2);
}
