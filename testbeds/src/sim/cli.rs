//! `chorus-testbeds sim`: run the simulator over many seeds, print the summary (text, or one
//! JSON document with `--json`), exit 0 when every claimed invariant held, 1 on any violation,
//! 2 for bad arguments.

use std::process::ExitCode;

use super::{SimArgs, run};

/// Run the command.
pub fn main(args: &SimArgs) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chorus-testbeds sim: {e}");
            return ExitCode::from(2);
        }
    };
    let (reports, summary) = run(&config);
    if args.verbose {
        for r in &reports {
            eprintln!("{}", r.line());
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&summary) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("chorus-testbeds sim: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", summary.text());
    }
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
