//! Chorus testbeds (under construction: see the project's issues).

fn main() {
    eprintln!("chorus-testbeds: no scenario is implemented yet");
    std::process::exit(2);
}
