//! The `cra` command line program; all of its work lives in the library.

fn main() -> std::process::ExitCode {
    cra::cli::main()
}
