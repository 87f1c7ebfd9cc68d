fn main() {
    std::process::exit(injixo_cloud_link::cli::main());
}
