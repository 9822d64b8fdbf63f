//! The string unions of the `.d.ts` (backup phases, sync statuses, error codes) and the events
//! of `sync.on` (`SyncEvents`) against what the code produces. The unions are derived by tsify
//! from the enums; this checks that every value the code hands to JS is declared and every
//! declared one is produced.
//!
//! The declarations are read from the derived `Tsify::DECL`s, and with `MANA_SYNC_DTS=<path>`
//! (scripts/ci/test-browser.sh, after building pkg/) from the generated `.d.ts` itself.
//! Whether every phase really reaches `onProgress` is checked in the browser
//! (tests/backup_web.rs,
//! `every_backup_phase_is_reported_and_app_selection_exports_only_those_apps`).

use std::collections::BTreeSet;

use tsify::Tsify;

use crate::backup::{BackupError, Phase};
use crate::claim::SignInOptions;
use crate::clock::Hlc;
use crate::crypto::CryptoError;
use crate::error_code::ErrorCode;
use crate::merge::{meta_entry, FieldMeta};
use crate::protocol::ProtocolError;
use crate::protocol::{FIELD_DELETED_AT, FIELD_ID, FIELD_SPACE_ID};
use crate::records::ManaRecord;
use crate::records::RecordError;
use crate::schema::ConfigError;
use crate::sync::lease::{EventKind, STATUS_EVENT};
use crate::sync::{SyncError, SyncStatus};
use crate::ClockError;

/// What follows `head` in `text`, up to `end` (both excluded).
fn declaration<'t>(text: &'t str, head: &str, end: &str) -> &'t str {
    let start = text
        .find(head)
        .unwrap_or_else(|| panic!("no `{head}` in the declarations"))
        + head.len();
    let len = text[start..]
        .find(end)
        .unwrap_or_else(|| panic!("`{head}` does not end with `{end}`"));
    &text[start..start + len]
}

/// The members of `export type <name> = "a" | "b" …;` in `text`; every member must be a string
/// literal.
fn union_members(text: &str, name: &str) -> BTreeSet<String> {
    // Members may carry their doc comments: `/** … */ "a"`.
    let mut union = declaration(text, &format!("export type {name} = "), ";").to_string();
    while let Some(open) = union.find("/*") {
        let close = open + union[open..].find("*/").expect("a comment ends") + 2;
        union.replace_range(open..close, "");
    }
    union
        .split('|')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            m.strip_prefix('"')
                .and_then(|m| m.strip_suffix('"'))
                .unwrap_or_else(|| panic!("{name}: member {m} is not a string literal"))
                .to_string()
        })
        .collect()
}

/// The declared members of `name`, from `decl` and, when given, from the generated `.d.ts`.
fn declared(name: &str, decl: &str) -> BTreeSet<String> {
    let members = union_members(decl, name);
    if let Ok(path) = std::env::var("MANA_SYNC_DTS") {
        let dts = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            union_members(&dts, name),
            members,
            "{path}: {name} differs from the derived declaration"
        );
    }
    members
}

/// Fails with both differences named.
fn assert_same(name: &str, declared: &BTreeSet<String>, produced: &BTreeSet<String>) {
    let undeclared: Vec<_> = produced.difference(declared).collect();
    let unproduced: Vec<_> = declared.difference(produced).collect();
    assert!(
        undeclared.is_empty() && unproduced.is_empty(),
        "{name}: produced but not declared {undeclared:?}; declared but never produced {unproduced:?}"
    );
}

fn strings<'a>(it: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    it.into_iter().map(str::to_string).collect()
}

/// `list` holds every variant once: `index` is an exhaustive match (a new variant does not
/// compile until it has an index) and the indices found must be exactly `0..count`.
fn assert_every_variant<T>(name: &str, list: &[T], index: impl Fn(&T) -> usize, count: usize) {
    let found: BTreeSet<usize> = list.iter().map(index).collect();
    assert_eq!(found.len(), list.len(), "{name}: a variant is listed twice");
    assert_eq!(
        found,
        (0..count).collect(),
        "{name}: the list misses a variant"
    );
}

#[test]
fn backup_phases_are_declared_as_produced() {
    let index = |p: &Phase| match p {
        Phase::Derive => 0,
        Phase::Read => 1,
        Phase::Serialize => 2,
        Phase::Compress => 3,
        Phase::Seal => 4,
        Phase::Unseal => 5,
        Phase::Verify => 6,
        Phase::Parse => 7,
        Phase::Merge => 8,
    };
    assert_every_variant("Phase::ALL", &Phase::ALL, index, 9);
    // What `onProgress` is called with is `as_str()`; the union is derived from serde's names.
    for p in Phase::ALL {
        assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
    }
    let produced = strings(Phase::ALL.iter().map(|p| p.as_str()));
    assert_same(
        "BackupPhase",
        &declared("BackupPhase", Phase::DECL),
        &produced,
    );
}

#[test]
fn sync_statuses_are_declared_as_produced() {
    let index = |s: &SyncStatus| match s {
        SyncStatus::Local => 0,
        SyncStatus::Syncing => 1,
        SyncStatus::Synced => 2,
        SyncStatus::Offline => 3,
        SyncStatus::AuthRequired => 4,
        SyncStatus::PaymentRequired => 5,
        SyncStatus::Error => 6,
    };
    assert_every_variant("SyncStatus::ALL", &SyncStatus::ALL, index, 7);
    for s in SyncStatus::ALL {
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    let produced = strings(SyncStatus::ALL.iter().map(|s| s.as_str()));
    assert_same(
        "SyncStatus",
        &declared("SyncStatus", SyncStatus::DECL),
        &produced,
    );
}

/// The keys of `export interface <name> { key: …; … }` in `text` (one member per line, doc
/// comments skipped).
fn interface_keys(text: &str, name: &str) -> BTreeSet<String> {
    declaration(text, &format!("export interface {name} {{"), "\n}")
        .lines()
        .map(str::trim)
        .filter(|l| !(l.is_empty() || l.starts_with("/*") || l.starts_with('*')))
        .map(|l| {
            let key = l.split(':').next().unwrap().trim();
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}: {l:?} is not a `key: type;` member"
            );
            key.to_string()
        })
        .collect()
}

#[test]
fn sync_events_are_declared_as_produced() {
    let index = |k: &EventKind| match k {
        EventKind::Conflict => 0,
        EventKind::Change => 1,
    };
    assert_every_variant("EventKind::ALL", &EventKind::ALL, index, 2);
    for k in EventKind::ALL {
        assert_eq!(EventKind::from_name(k.as_str()), Some(k));
    }
    // `sync.on` accepts exactly these names (src/web/sync_handle.rs); `SyncEvents` is declared
    // by hand there, in the custom section (the generic `on` is not something tsify derives).
    let produced = strings(
        [STATUS_EVENT]
            .into_iter()
            .chain(EventKind::ALL.map(EventKind::as_str)),
    );
    let source = include_str!("web/sync_handle.rs");
    let declared = interface_keys(source, "SyncEvents");
    if let Ok(path) = std::env::var("MANA_SYNC_DTS") {
        let dts = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            interface_keys(&dts, "SyncEvents"),
            declared,
            "{path}: SyncEvents"
        );
        assert!(
            dts.contains("on<E extends keyof SyncEvents>("),
            "{path}: ManaSync.on is not generic over SyncEvents"
        );
    }
    assert_same("SyncEvents", &declared, &produced);
    let text = "export interface A {\n    /** doc */\n    a: X;\n    b2: Y;\n}\n";
    assert_eq!(interface_keys(text, "A"), strings(["a", "b2"]));
}

/// One value of every variant of every error enum of the core, each checked complete.
fn core_error_codes() -> Vec<ErrorCode> {
    let s = String::new;
    let clock = [ClockError::InvalidTimestamp(s()), ClockError::OutOfRange(0)];
    assert_every_variant(
        "ClockError",
        &clock,
        |e| match e {
            ClockError::InvalidTimestamp(_) => 0,
            ClockError::OutOfRange(_) => 1,
        },
        2,
    );
    let crypto = [
        CryptoError::VaultLocked,
        CryptoError::DecryptFailed(s()),
        CryptoError::InvalidKey(0),
        CryptoError::WrongVaultKey,
        CryptoError::Random(s()),
    ];
    assert_every_variant(
        "CryptoError",
        &crypto,
        |e| match e {
            CryptoError::VaultLocked => 0,
            CryptoError::DecryptFailed(_) => 1,
            CryptoError::InvalidKey(_) => 2,
            CryptoError::WrongVaultKey => 3,
            CryptoError::Random(_) => 4,
        },
        5,
    );
    let record = [
        RecordError::UnknownCollection(s()),
        RecordError::InvalidRecord(s()),
        RecordError::NotFound {
            collection: s(),
            id: s(),
        },
        RecordError::Crypto(CryptoError::VaultLocked),
        RecordError::Clock(ClockError::OutOfRange(0)),
    ];
    assert_every_variant(
        "RecordError",
        &record,
        |e| match e {
            RecordError::UnknownCollection(_) => 0,
            RecordError::InvalidRecord(_) => 1,
            RecordError::NotFound { .. } => 2,
            RecordError::Crypto(_) => 3,
            RecordError::Clock(_) => 4,
        },
        5,
    );
    let protocol = [
        ProtocolError::InvalidEventId(s()),
        ProtocolError::EmptyTable,
        ProtocolError::EmptyId,
        ProtocolError::UnknownOp,
        ProtocolError::MissingData,
        ProtocolError::MissingFields,
        ProtocolError::MissingTimestamp { op: "", field: "" },
        ProtocolError::InvalidTimestamp {
            field: s(),
            value: s(),
        },
        ProtocolError::ReservedField(s()),
        ProtocolError::IdMismatch(s()),
        ProtocolError::TooManyChanges(0),
    ];
    assert_every_variant(
        "ProtocolError",
        &protocol,
        |e| match e {
            ProtocolError::InvalidEventId(_) => 0,
            ProtocolError::EmptyTable => 1,
            ProtocolError::EmptyId => 2,
            ProtocolError::UnknownOp => 3,
            ProtocolError::MissingData => 4,
            ProtocolError::MissingFields => 5,
            ProtocolError::MissingTimestamp { .. } => 6,
            ProtocolError::InvalidTimestamp { .. } => 7,
            ProtocolError::ReservedField(_) => 8,
            ProtocolError::IdMismatch(_) => 9,
            ProtocolError::TooManyChanges(_) => 10,
        },
        11,
    );
    let sync = [
        SyncError::Network(s()),
        SyncError::Unauthorized(s()),
        SyncError::NoToken,
        SyncError::PaymentRequired(s()),
        SyncError::SchemaVersionUnsupported(s()),
        SyncError::RateLimited {
            message: s(),
            retry_after: None,
        },
        SyncError::Server {
            status: 500,
            message: s(),
            retry_after: None,
        },
        SyncError::Rejected {
            status: 400,
            code: s(),
            message: s(),
        },
        SyncError::Protocol(s()),
        SyncError::Local {
            code: ErrorCode::Storage,
            message: s(),
        },
    ];
    assert_every_variant(
        "SyncError",
        &sync,
        |e| match e {
            SyncError::Network(_) => 0,
            SyncError::Unauthorized(_) => 1,
            SyncError::NoToken => 2,
            SyncError::PaymentRequired(_) => 3,
            SyncError::SchemaVersionUnsupported(_) => 4,
            SyncError::RateLimited { .. } => 5,
            SyncError::Server { .. } => 6,
            SyncError::Rejected { .. } => 7,
            SyncError::Protocol(_) => 8,
            SyncError::Local { .. } => 9,
        },
        10,
    );
    let backup = [
        BackupError::NotAManaArchive(s()),
        BackupError::UnsupportedFormatVersion(s()),
        BackupError::PassphraseRequired,
        BackupError::WrongPassphrase,
        BackupError::ArchiveTampered(s()),
        BackupError::WrongPassphraseOrTampered,
        BackupError::ArchiveCorrupt {
            table: None,
            line: None,
            reason: s(),
        },
        BackupError::ArchiveTooLarge(s()),
        BackupError::InvalidEntryName {
            name: s(),
            reason: s(),
        },
        BackupError::InvalidInput(s()),
    ];
    assert_every_variant(
        "BackupError",
        &backup,
        |e| match e {
            BackupError::NotAManaArchive(_) => 0,
            BackupError::UnsupportedFormatVersion(_) => 1,
            BackupError::PassphraseRequired => 2,
            BackupError::WrongPassphrase => 3,
            BackupError::ArchiveTampered(_) => 4,
            BackupError::WrongPassphraseOrTampered => 5,
            BackupError::ArchiveCorrupt { .. } => 6,
            BackupError::ArchiveTooLarge(_) => 7,
            BackupError::InvalidEntryName { .. } => 8,
            BackupError::InvalidInput(_) => 9,
        },
        10,
    );
    // `SyncError::Local` carries a store code (any of the others): not a code of its own.
    let mut codes: Vec<ErrorCode> = sync[..9].iter().map(SyncError::code).collect();
    codes.extend(clock.iter().map(ClockError::code));
    codes.extend(crypto.iter().map(CryptoError::code));
    codes.extend(record.iter().map(RecordError::code));
    codes.extend(protocol.iter().map(ProtocolError::code));
    codes.extend(backup.iter().map(BackupError::code));
    codes.push(ConfigError(s()).code());
    codes
}

/// The codes the browser layer throws itself: every `ErrorCode::X` named in src/web (its
/// `JsCodedError::new` takes an `ErrorCode`, so there is no other way to throw one).
fn web_error_codes() -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/web");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("src/web") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices("ErrorCode::") {
            let rest = &text[i + "ErrorCode::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn error_codes_are_declared_as_produced() {
    // `ALL` and `as_str` come from the same macro list as the variants; serde's names (which the
    // union is derived from) must be those.
    for c in ErrorCode::ALL {
        assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
    }
    let by_name = |name: &str| {
        *ErrorCode::ALL
            .iter()
            .find(|c| format!("{c:?}") == name)
            .unwrap_or_else(|| panic!("src/web names ErrorCode::{name}, which does not exist"))
    };
    let mut produced: BTreeSet<String> = core_error_codes()
        .into_iter()
        .map(|c| c.as_str().to_string())
        .collect();
    produced.extend(
        web_error_codes()
            .iter()
            .map(|n| by_name(n).as_str().to_string()),
    );
    assert_same(
        "ErrorCode",
        &declared("ErrorCode", ErrorCode::DECL),
        &produced,
    );
}

#[test]
fn union_parsing_reads_every_member_and_rejects_non_literals() {
    let text = "x\nexport type A = \"a\" | \"b-c\";\nexport type B = \"x\" | number;";
    assert_eq!(union_members(text, "A"), strings(["a", "b-c"]));
    let non_literal = std::panic::catch_unwind(|| union_members(text, "B"));
    assert!(non_literal.is_err());
}

/// `decl` appears, as derived, in the generated `.d.ts` when one is given.
fn assert_in_dts(name: &str, decl: &str) {
    if let Ok(path) = std::env::var("MANA_SYNC_DTS") {
        let dts = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            dts.contains(decl),
            "{path}: {name} is not declared as derived:\n{decl}"
        );
    }
}

/// The keys `value` serialises to.
fn keys(value: impl serde::Serialize) -> BTreeSet<String> {
    let value = serde_json::to_value(value).unwrap();
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_reserved_record_fields_are_declared_by_the_names_the_code_reads() {
    let record = ManaRecord {
        id: "a".into(),
        space_id: Some("s".into()),
        deleted_at: Some(Hlc::new(0, 0, 0).unwrap()),
        fields: serde_json::Map::new(),
    };
    assert_eq!(
        keys(&record),
        strings([FIELD_ID, FIELD_SPACE_ID, FIELD_DELETED_AT])
    );
    assert_in_dts("ManaRecord", ManaRecord::DECL);
}

#[test]
fn field_meta_and_sign_in_options_are_declared_as_the_code_reads_them() {
    let at = Hlc::new(0, 0, 0).unwrap();
    let meta = meta_entry(at, Some(&serde_json::json!({"kind": "ai"})));
    // What is written is read back, and is the declared struct as serde names it.
    let read = FieldMeta::read(&meta).expect("a written entry reads back");
    assert_eq!(serde_json::to_value(&read).unwrap(), meta);
    assert_eq!(keys(&read), strings(["at", "actor"]));
    let bare = meta_entry(at, None);
    assert_eq!(
        serde_json::to_value(FieldMeta::read(&bare).unwrap()).unwrap(),
        bare
    );
    assert!(FieldMeta::DECL.contains("at: Hlc") && FieldMeta::DECL.contains("actor?: Actor"));
    assert_in_dts("FieldMeta", FieldMeta::DECL);

    let options = SignInOptions {
        vault_key: Some(vec![0]),
    };
    assert_eq!(keys(&options), strings([SignInOptions::VAULT_KEY]));
    assert_in_dts("SignInOptions", SignInOptions::DECL);
    assert_eq!(
        Hlc::DECL.trim_end().rsplit('\n').next(),
        Some("export type Hlc = string;")
    );
    assert_in_dts("Hlc", Hlc::DECL);
}
