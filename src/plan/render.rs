//! Renderers of a `Plan`: coloured text for terminals, JSON for machines (Markdown for pull
//! requests is in `plan::markdown`).
//!
//! Pure string building: colour is an option passed in (the CLI decides from `NO_COLOR` and
//! the terminal), never detected here.

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Action, Change, FieldChange, Plan};

/// Text rendering options.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    pub color: bool,
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const DIM: &str = "\x1b[2m";

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// RFC 3339, seconds precision, UTC.
pub fn format_time(time: OffsetDateTime) -> String {
    time.replace_nanosecond(0)
        .unwrap_or(time)
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.to_string())
}

/// The plan as a reviewer reads it in a terminal.
pub fn text(plan: &Plan, options: TextOptions) -> String {
    let p = Painter {
        color: options.color,
    };
    let mut out = String::new();
    if plan.changes.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.paint(
                GREEN,
                "No changes. Certificates and deployments match the configuration."
            )
        );
    } else {
        let _ = writeln!(out, "certform will perform these actions:\n");
        for change in &plan.changes {
            render_change(&mut out, &p, change);
            out.push('\n');
        }
    }
    for blocked in &plan.blocked {
        let wanted = blocked
            .wanted
            .as_deref()
            .map(|w| format!(" (wanted: {w})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {}{}\n      {}\n",
            p.paint(&format!("{BOLD}{YELLOW}"), "  ! blocked"),
            p.paint(BOLD, &blocked.certificate),
            wanted,
            blocked.reason
        );
    }
    for warning in &plan.warnings {
        let _ = writeln!(
            out,
            "{} {}\n      {}\n",
            p.paint(&format!("{BOLD}{YELLOW}"), "  ! warning"),
            p.paint(BOLD, &warning.certificate),
            warning.message
        );
    }
    if !plan.at_risk.is_empty() {
        let _ = writeln!(
            out,
            "{} {}\n      `apply` exits 3 until they renew\n",
            p.paint(&format!("{BOLD}{RED}"), "  !! AT RISK OF EXPIRING:"),
            p.paint(BOLD, &plan.at_risk.join(", "))
        );
    }
    for guard in &plan.guards {
        let _ = writeln!(
            out,
            "{} {}\n      `apply` refuses this plan without `--force` (threshold `[defaults] {}`)\n",
            p.paint(&format!("{BOLD}{RED}"), "  !! SAFETY THRESHOLD EXCEEDED:"),
            p.paint(BOLD, &guard.message),
            guard.setting
        );
    }
    if !plan.schedule.is_empty() {
        let _ = writeln!(out, "{}", schedule_line(plan));
    }
    if !plan.changes.is_empty() {
        let counts: Vec<String> = plan
            .summary()
            .into_iter()
            .map(|(verb, n)| format!("{n} to {verb}"))
            .collect();
        let destructive = plan
            .changes
            .iter()
            .filter(|c| c.action.is_destructive())
            .count();
        let mut line = format!("Plan: {}", counts.join(", "));
        if destructive > 0 {
            line.push_str(&format!(
                ". {}",
                p.paint(
                    &format!("{BOLD}{RED}"),
                    &format!("{destructive} destructive")
                )
            ));
        }
        let _ = writeln!(out, "{line}.");
    }
    out
}

/// How many scheduled renewals the text plan names; `--json` lists every one.
const SCHEDULE_SHOWN: usize = 5;

/// The soonest scheduled renewals in one line.
fn schedule_line(plan: &Plan) -> String {
    let shown: Vec<String> = plan
        .schedule
        .iter()
        .take(SCHEDULE_SHOWN)
        .map(|s| format!("{} at {}", s.certificate, format_time(s.renew_at)))
        .collect();
    let more = plan.schedule.len().saturating_sub(SCHEDULE_SHOWN);
    let more = if more > 0 {
        format!(", and {more} more (`plan --json` lists them)")
    } else {
        String::new()
    };
    format!("Next renewals: {}{more}.", shown.join(", "))
}

fn render_change(out: &mut String, p: &Painter, change: &Change) {
    let (symbol, style) = match &change.action {
        Action::Create { .. } => ("+", GREEN),
        Action::Adopt { .. } => ("<=", CYAN),
        Action::Wait { .. } => ("…", DIM),
        Action::Fetch { .. } => ("↓", CYAN),
        Action::Deploy => ("→", CYAN),
        Action::Renew { .. } => ("↻", YELLOW),
        Action::Reissue { .. } => ("~", YELLOW),
        Action::Revoke {
            record_only: true, ..
        } => ("-", DIM),
        Action::Revoke { .. } | Action::Cancel { .. } => ("!", RED),
        Action::Forget => ("-", DIM),
        Action::UpdateSettings { .. } => ("~", CYAN),
    };
    let mut head = format!(
        "  {} {} {}",
        p.paint(style, symbol),
        p.paint(&format!("{BOLD}{style}"), change.action.verb()),
        p.paint(BOLD, &change.certificate)
    );
    head.push_str(&format!(" (ca `{}`", change.ca));
    match &change.action {
        Action::Reissue { same_order, .. } => head.push_str(if *same_order {
            ", same order"
        } else {
            ", new order"
        }),
        Action::Adopt { order_id, .. }
        | Action::Wait { order_id, .. }
        | Action::Fetch { order_id }
        | Action::Cancel { order_id, .. } => head.push_str(&format!(", order {order_id}")),
        Action::Renew {
            serial, on_order, ..
        } => {
            if let Some(coverage) = on_order {
                head.push_str(&format!(", {}", coverage.describe()));
            }
            head.push_str(&format!(", replaces serial {serial}"));
        }
        Action::Revoke { serial, reason, .. } => {
            head.push_str(&format!(", serial {serial}, reason {}", reason.as_str()))
        }
        _ => {}
    }
    head.push(')');
    if change.action.is_destructive() {
        head.push_str(&format!(
            "  {}",
            p.paint(&format!("{BOLD}{RED}"), "[DESTRUCTIVE]")
        ));
    }
    let _ = writeln!(out, "{head}");
    let _ = writeln!(out, "      reason: {}", change.reason);
    match &change.action {
        Action::Create {
            sans,
            key,
            validity,
            ..
        } => {
            let _ = writeln!(out, "      names: {}", sans.join(", "));
            let _ = writeln!(out, "      key: {key}, validity: {validity}");
        }
        Action::Wait { dcv, .. } => {
            for status in dcv {
                let _ = writeln!(
                    out,
                    "      dcv {} ({}): {}",
                    status.domain, status.method, status.status
                );
            }
        }
        Action::Reissue { changes, .. } | Action::UpdateSettings { changes } => {
            render_field_diff(out, p, changes)
        }
        Action::Revoke {
            forget,
            cancel_order,
            cancel_refund,
            ..
        } => {
            if let Some(order_id) = cancel_order {
                let _ = writeln!(
                    out,
                    "      then: cancel pending order {order_id} (refund: {})",
                    if *cancel_refund { "yes" } else { "no" }
                );
            }
            if *forget {
                let _ = writeln!(out, "      then: forget (drop from state)");
            }
        }
        Action::Cancel { forget, refund, .. } => {
            let _ = writeln!(
                out,
                "      refund: {}",
                if *refund {
                    "yes (the CA gives a cancelled pending order's price back)"
                } else {
                    "no"
                }
            );
            if *forget {
                let _ = writeln!(out, "      then: forget (drop from state)");
            }
        }
        _ => {}
    }
    for target in &change.deploy {
        let _ = writeln!(out, "      deploy: {target}");
    }
    for target in &change.undeploy {
        let _ = writeln!(out, "      stop tracking: {target}");
    }
}

fn render_field_diff(out: &mut String, p: &Painter, changes: &[FieldChange]) {
    let old: String = changes
        .iter()
        .filter_map(|c| c.old.as_ref().map(|v| format!("{} = {v}\n", c.field)))
        .collect();
    let new: String = changes
        .iter()
        .filter_map(|c| c.new.as_ref().map(|v| format!("{} = {v}\n", c.field)))
        .collect();
    let diff = TextDiff::from_lines(&old, &new);
    for line in diff.iter_all_changes() {
        let (sign, style) = match line.tag() {
            ChangeTag::Delete => ("-", RED),
            ChangeTag::Insert => ("+", GREEN),
            ChangeTag::Equal => (" ", ""),
        };
        let text = format!("{sign} {}", line.value().trim_end());
        let _ = writeln!(
            out,
            "      {}",
            if style.is_empty() {
                text
            } else {
                p.paint(style, &text)
            }
        );
    }
}

/// The bare plan as JSON (stable field order). The CLI prints the versioned plan document
/// instead (`apply::saved::SavedPlan`: this plus `format_version` and the fingerprint).
pub fn json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}
