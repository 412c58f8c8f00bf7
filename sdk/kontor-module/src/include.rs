//! Collecting the files of `pack --include DIR`.

use std::path::Path;

use anyhow::{bail, Context};
use kontor::modules::package::EXTRA_DIRS;

/// Every regular file under `dir`, as (`<dir name>/<relative path>`, bytes),
/// sorted. `dir` must be named like a package folder (`templates`, `assets`
/// or `locales`); links are refused rather than followed, so a package
/// never picks up a file from outside the folder by accident.
pub fn collect(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| EXTRA_DIRS.contains(n))
        .with_context(|| {
            format!(
                "--include {}: the folder must be named {}",
                dir.display(),
                EXTRA_DIRS.join(", ")
            )
        })?;
    let mut files = Vec::new();
    walk(dir, name, &mut files)?;
    files.sort();
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            bail!("{}: file names must be UTF-8", path.display());
        };
        let inner = format!("{prefix}/{name}");
        let kind = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .file_type();
        if kind.is_dir() {
            walk(&path, &inner, files)?;
        } else if kind.is_file() {
            let data =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push((inner, data));
        } else {
            bail!(
                "{} is a link or special file; a package holds only regular files",
                path.display()
            );
        }
    }
    Ok(())
}
