//! Every kind of bad configuration gives a clear message and exit code 78,
//! both from `check-config` and from `run` (which also logs it, because a
//! service's stderr is read by nobody).

mod support;

use support::*;

const EX_CONFIG: i32 = 78;

/// Runs `check-config` and `run` on `config`; both must fail with 78 and
/// say every one of `needles` on stderr. Returns check-config's stderr.
fn assert_rejected(config: &str, needles: &[&str]) -> String {
    let install = InstallDir::new();
    install.write_config(config);

    let check = install.output(&["check-config"]);
    let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_eq!(
        check.status.code(),
        Some(EX_CONFIG),
        "check-config: {check_err}"
    );

    let run = install.output(&["run"]);
    let run_err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(EX_CONFIG), "run: {run_err}");

    for needle in needles {
        assert!(
            check_err.contains(needle),
            "check-config lacks {needle:?}:\n{check_err}"
        );
        assert!(run_err.contains(needle), "run lacks {needle:?}:\n{run_err}");
    }
    let log = install.read_log();
    assert!(
        log.contains("ERROR daemon: cannot start: the configuration file"),
        "run logs the problem: {log}"
    );
    check_err
}

#[test]
fn toml_syntax_error_shows_file_line_column_and_caret() {
    let err = assert_rejected(
        "[app]\nname = \"x\"\nverbose = tru\n",
        &[
            "TOML syntax error",
            "injixo-cloud-link.toml:3:11",
            "3 | verbose = tru",
        ],
    );
    let caret_line = err
        .lines()
        .find(|l| l.trim_start().starts_with("| ") && l.contains('^'));
    let caret_line = caret_line.expect("a caret line");
    assert_eq!(caret_line.find('^'), Some("  | verbose = ".len()), "{err}");
}

#[test]
fn unknown_key_suggests_the_right_one() {
    assert_rejected(
        "[app]\nimportDirectry = \"c:/import\"\n",
        &[
            "unknown key `importDirectry` in [app]",
            "did you mean `importDirectory`?",
            "injixo-cloud-link.toml:2:1",
        ],
    );
}

#[test]
fn wrong_type_names_key_expectation_and_value() {
    assert_rejected(
        "[app]\nverbose = \"yes\"\n",
        &["`verbose` in [app] must be true or false, but it is the text \"yes\""],
    );
    assert_rejected(
        "[log]\nkeepDays = \"thirty\"\n",
        &["`keepDays` in [log] must be a whole number from 1 to 36500, but it is the text \"thirty\""],
    );
    assert_rejected(
        "[cloud]\nurl = 443\n",
        &["`url` in [cloud] must be text in quotes, but it is the number 443"],
    );
}

#[test]
fn wrong_values_are_explained() {
    assert_rejected(
        "[log]\nkeepDays = 0\n",
        &["`keepDays` in [log] must be a whole number from 1 to 36500, but it is 0"],
    );
    assert_rejected(
        "[cloud]\nurl = \"http://cloud.example.com\"\n",
        &["plain http is only allowed to this machine"],
    );
}

#[test]
fn invalid_service_name_is_refused() {
    assert_rejected(
        "[app]\nname = \"injixo cloud link\"\n",
        &["must be a valid service name", "a space at position 7"],
    );
    assert_rejected("[app]\nname = \"a/b\"\n", &["'/' at position 2"]);
}

#[test]
fn file_that_is_not_utf8_is_refused() {
    let install = InstallDir::new();
    std::fs::write(install.config_path(), b"[app]\nname = \"caf\xe9\"\n").unwrap();
    let out = install.output(&["check-config"]);
    assert_eq!(out.status.code(), Some(EX_CONFIG));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

#[test]
fn check_config_prints_the_effective_configuration_with_origins() {
    let install = InstallDir::new();
    // Notepad's byte-order mark is accepted.
    install.write_config("\u{feff}[app]\nverbose = true\nimportDirectory = 'in'\n");
    let out = install.output(&["check-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("verbose = true  # from the file"),
        "{stdout}"
    );
    assert!(
        stdout.contains("name = \"com.injixo.cloud-link\"  # default"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "importDirectory = '{}/in'  # from the file",
            install.path().display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("url = \"https://www.injixo.com\"  # default"),
        "{stdout}"
    );
}

#[test]
fn missing_file_means_defaults() {
    let install = InstallDir::new();
    let out = install.output(&["check-config"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not found: all defaults"));
}

#[test]
fn every_key_with_a_value_of_the_wrong_type_is_named() {
    for (config, message) in [
        ("[app]\nname = 42\n", "`name` in [app] must be text in quotes, but it is the number 42"),
        ("[app]\nimportDirectory = true\n", "`importDirectory` in [app] must be text in quotes, but it is true"),
        ("[app]\nverbose = 1\n", "`verbose` in [app] must be true or false, but it is the number 1"),
        ("[cloud]\nurl = [\"https://x\"]\n", "`url` in [cloud] must be text in quotes, but it is a list"),
        ("[log]\nkeepDays = 1.5\n", "`keepDays` in [log] must be a whole number from 1 to 36500, but it is the number 1.5"),
        ("[spool]\nmaxBytes = true\n", "`maxBytes` in [spool] must be a size such as 10737418240 or \"10 GiB\" (at least 1 MiB), but it is true"),
        ("[csv]\npoll = \"yes\"\n", "`poll` in [csv] must be true or false, but it is the text \"yes\""),
        ("[csv]\nsettleSeconds = \"2\"\n", "`settleSeconds` in [csv] must be a whole number from 0 to 3600, but it is the text \"2\""),
        ("[csv]\nmaxBytes = 1979-05-27\n", "`maxBytes` in [csv] must be a size such as 10737418240 or \"10 GiB\" (at least 1 MiB), but it is the date 1979-05-27"),
        ("[csv]\nafterImport = 1\n", "`afterImport` in [csv] must be text in quotes, but it is the number 1"),
        ("[database]\nconnectionString = 5\n", "`connectionString` in [database] must be text in quotes, but it is a number"),
        ("[database]\nuid = { a = 1 }\n", "`uid` in [database] must be text in quotes, but it is a table"),
        ("app = 5\n", "`app` must be a section, written [app] on a line of its own"),
        ("[[csv]]\npoll = true\n", "`csv` must be a section, written [csv] on a line of its own"),
    ] {
        assert_rejected(config, &[message]);
    }
}

#[test]
fn a_password_is_never_shown_even_when_its_line_is_wrong() {
    for (config, message) in [
        (
            "[database]\npassword = 12345678\n",
            "`password` in [database] must be text in quotes, but it is a number",
        ),
        (
            "[database]\npassword = \"12345678\" x\n",
            "TOML syntax error",
        ),
        (
            "[database]\nconnectionString = \"Driver=x;Pwd=12345678\" x\n",
            "TOML syntax error",
        ),
    ] {
        let install = InstallDir::new();
        install.write_config(config);
        let check = install.output(&["check-config"]);
        let run = install.output(&["run"]);
        let shown = format!(
            "{}{}{}",
            String::from_utf8_lossy(&check.stderr),
            String::from_utf8_lossy(&run.stderr),
            install.read_log()
        );
        assert_eq!(check.status.code(), Some(EX_CONFIG), "{shown}");
        assert!(shown.contains(message), "{message:?} in {shown}");
        assert!(shown.contains("= ***"), "{shown}");
        assert!(
            !shown.contains("12345678"),
            "the password is shown: {shown}"
        );
    }
}
