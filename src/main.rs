fn main() {
    std::process::exit(certform::cli::main());
}
