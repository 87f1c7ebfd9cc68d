//! `msi-transform`: instance transforms for the Windows MSI (see the
//! library's documentation for the format).
//!
//! ```text
//! msi-transform diff BASE.msi NEW.msi OUT.mst     the transform BASE → NEW
//! msi-transform embed BASE.msi NAME IN.mst        store it as sub-storage NAME
//! msi-transform extract BASE.msi NAME OUT.mst     a sub-storage as a .mst file
//! msi-transform show BASE.msi (IN.mst | :NAME)    list a transform's changes
//! msi-transform export BASE.msi (IN.mst | :NAME | -) TABLE
//!                                                 a table of BASE with it applied
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use msi_transform::{
    apply, describe, diff, embed, export, extract, parse_transform, read_transform_file,
    transform_streams, write_transform_file, Database, Result,
};

#[derive(Parser)]
#[command(about = "Builds and embeds Windows Installer transforms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the transform that turns BASE into NEW.
    Diff {
        base: PathBuf,
        new: PathBuf,
        out: PathBuf,
    },
    /// Stores a transform file in the MSI as the sub-storage NAME
    /// (applied by `msiexec /i MSI TRANSFORMS=":NAME"`).
    Embed {
        msi: PathBuf,
        name: String,
        transform: PathBuf,
    },
    /// Writes the MSI's sub-storage NAME as a transform file.
    Extract {
        msi: PathBuf,
        name: String,
        out: PathBuf,
    },
    /// Lists the changes of a transform file, or of `:NAME` embedded in BASE.
    Show { base: PathBuf, transform: String },
    /// Prints TABLE of BASE with a transform file, or `:NAME` embedded in
    /// BASE, applied by this tool (`-`: none), laid out as `msiinfo export`.
    Export {
        base: PathBuf,
        transform: String,
        table: String,
    },
}

fn transform_of(base: &std::path::Path, transform: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    match transform.strip_prefix(':') {
        Some(name) => extract(base, name),
        None => read_transform_file(transform.as_ref()),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Diff { base, new, out } => {
            let base_db = Database::read(&base)?;
            let transform = diff(&base_db, &Database::read(&new)?)?;
            write_transform_file(&out, &transform_streams(&base_db, &transform)?)?;
        }
        Command::Embed {
            msi,
            name,
            transform,
        } => embed(&msi, &name, &read_transform_file(&transform)?)?,
        Command::Extract { msi, name, out } => {
            let streams: Vec<_> = extract(&msi, &name)?.into_iter().collect();
            write_transform_file(&out, &streams)?;
        }
        Command::Show { base, transform } => {
            let streams = transform_of(&base, &transform)?;
            let base_db = Database::read(&base)?;
            print!(
                "{}",
                describe(&base_db, &parse_transform(&base_db, &streams)?)
            );
        }
        Command::Export {
            base,
            transform,
            table,
        } => {
            let mut db = Database::read(&base)?;
            if transform != "-" {
                let streams = transform_of(&base, &transform)?;
                db = apply(&db, &parse_transform(&db, &streams)?)?;
            }
            print!("{}", export(&db, &table)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msi-transform: {e}");
            ExitCode::FAILURE
        }
    }
}
