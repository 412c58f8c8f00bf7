//! Talking to the person installing: numbered steps, prompts with defaults
//! (interactive only) and spinners for the slow steps.
//!
//! Non-interactive runs never prompt: a missing answer takes its default or
//! is an error that names the flag, so a script cannot hang on a question.

use std::time::Duration;

use dialoguer::theme::SimpleTheme;
use dialoguer::{Confirm, Input, Password};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The installer's console.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Whether questions may be asked.
    pub interactive: bool,
}

impl Ui {
    /// A step heading: `==> Database`.
    pub fn step(&self, title: &str) {
        println!("\n==> {title}");
    }

    /// One line of a step's result.
    pub fn note(&self, text: &str) {
        println!("    {text}");
    }

    /// Ask for text; `default` is taken on an empty answer.
    pub fn text(&self, prompt: &str, default: Option<&str>) -> anyhow::Result<String> {
        let theme = SimpleTheme;
        let mut input = Input::<String>::with_theme(&theme).with_prompt(prompt);
        match default {
            Some(d) => input = input.default(d.to_string()),
            None => input = input.allow_empty(false),
        }
        Ok(input.interact_text()?.trim().to_string())
    }

    /// Ask for text that may be empty (an empty answer means "skip").
    pub fn optional_text(&self, prompt: &str) -> anyhow::Result<String> {
        let theme = SimpleTheme;
        Ok(Input::<String>::with_theme(&theme)
            .with_prompt(prompt)
            .allow_empty(true)
            .interact_text()?
            .trim()
            .to_string())
    }

    /// Ask for a secret, twice; empty is allowed when `allow_empty`.
    pub fn password(&self, prompt: &str, allow_empty: bool) -> anyhow::Result<String> {
        let theme = SimpleTheme;
        Ok(Password::with_theme(&theme)
            .with_prompt(prompt)
            .with_confirmation("Repeat it", "The two entries differ; again")
            .allow_empty_password(allow_empty)
            .interact()?)
    }

    /// Ask yes or no.
    pub fn confirm(&self, prompt: &str, default: bool) -> anyhow::Result<bool> {
        let theme = SimpleTheme;
        Ok(Confirm::with_theme(&theme)
            .with_prompt(prompt)
            .default(default)
            .interact()?)
    }

    /// A spinner for a step that takes a while; drawn only on a terminal in
    /// interactive runs, so logs of scripted installs stay clean.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let bar = if self.interactive {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        };
        if let Ok(style) = ProgressStyle::with_template("    {spinner} {msg}") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}
