//! The plan as Markdown, fit for a pull-request comment: a summary line, a loud section for
//! destructive actions, one table per action (collapsed when long), the field diff of
//! reissues, then blocked certificates and warnings.
//!
//! Pure string building. Every name and reason is escaped, so a certificate name or a CA
//! message cannot break the table or inject HTML into the comment.

use std::fmt::Write as _;

use super::{Action, Change, Plan};

/// Tables with more rows than this are folded into a `<details>` block.
pub const COLLAPSE_AFTER: usize = 10;

/// The plan as a Markdown document.
pub fn render(plan: &Plan) -> String {
    let mut out = String::from("### certform plan\n\n");
    if plan.changes.is_empty() {
        out.push_str("**No changes.** Certificates and deployments match the configuration.\n");
    } else {
        let counts: Vec<String> = plan
            .summary()
            .into_iter()
            .map(|(verb, n)| format!("{n} to {verb}"))
            .collect();
        let _ = write!(out, "**Plan:** {}", counts.join(", "));
        let destructive: Vec<&Change> = plan
            .changes
            .iter()
            .filter(|c| c.action.is_destructive())
            .collect();
        if destructive.is_empty() {
            out.push_str(".\n");
        } else {
            let _ = writeln!(out, ". **{} destructive.**", destructive.len());
        }
        if !plan.guards.is_empty() {
            // A plan beyond a safety threshold: apply refuses it without `--force`.
            out.push_str("\n> [!WARNING]\n");
            out.push_str(
                "> **Safety threshold exceeded: `certform apply` refuses this plan without `--force`.**\n>\n",
            );
            for guard in &plan.guards {
                let _ = writeln!(
                    out,
                    "> - `{}`: {}",
                    code(&guard.setting),
                    cell(&guard.message)
                );
            }
        }
        if !destructive.is_empty() {
            out.push_str("\n> [!CAUTION]\n");
            out.push_str("> **Destructive actions: irreversible at the CA.**\n>\n");
            for change in destructive {
                let _ = writeln!(
                    out,
                    "> - **{}** `{}` (CA `{}`): {}. {}",
                    change.action.verb(),
                    code(&change.certificate),
                    code(&change.ca),
                    cell(&change.action.detail()),
                    cell(&change.reason)
                );
            }
        }
        for (verb, _) in plan.summary() {
            let rows: Vec<&Change> = plan
                .changes
                .iter()
                .filter(|c| c.action.verb() == verb)
                .collect();
            render_table(&mut out, verb, &rows);
        }
        render_diffs(&mut out, plan);
    }
    if !plan.blocked.is_empty() {
        let mut table = String::from("| certificate | wanted | reason |\n|---|---|---|\n");
        for blocked in &plan.blocked {
            let _ = writeln!(
                table,
                "| `{}` | {} | {} |",
                code(&blocked.certificate),
                cell(blocked.wanted.as_deref().unwrap_or("")),
                cell(&blocked.reason)
            );
        }
        section(
            &mut out,
            &format!("Blocked ({})", plan.blocked.len()),
            &table,
            plan.blocked.len(),
        );
    }
    if !plan.warnings.is_empty() {
        let mut list = String::new();
        for warning in &plan.warnings {
            let _ = writeln!(
                list,
                "- `{}`: {}",
                code(&warning.certificate),
                cell(&warning.message)
            );
        }
        section(
            &mut out,
            &format!("Warnings ({})", plan.warnings.len()),
            &list,
            plan.warnings.len(),
        );
    }
    if !plan.at_risk.is_empty() {
        out.push_str(
            "
> [!CAUTION]
",
        );
        let _ = writeln!(
            out,
            "> **At risk of expiring: {}.** `certform apply` exits 3 until they renew.",
            plan.at_risk
                .iter()
                .map(|name| format!("`{}`", code(name)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !plan.schedule.is_empty() {
        let mut table = String::from("| certificate | renews at | expires |\n|---|---|---|\n");
        for scheduled in &plan.schedule {
            let _ = writeln!(
                table,
                "| `{}` | {} | {} |",
                code(&scheduled.certificate),
                super::render::format_time(scheduled.renew_at),
                super::render::format_time(scheduled.not_after)
            );
        }
        section(
            &mut out,
            &format!("Renewal schedule ({})", plan.schedule.len()),
            &table,
            plan.schedule.len(),
        );
    }
    out
}

fn render_table(out: &mut String, verb: &str, rows: &[&Change]) {
    let mut table = String::from("| certificate | CA | details | reason |\n|---|---|---|---|\n");
    for change in rows {
        let mut detail = cell(&change.action.detail());
        if !change.deploy.is_empty() {
            if !detail.is_empty() {
                detail.push_str("<br>");
            }
            detail.push_str(&format!("deploy: {}", list(&change.deploy)));
        }
        if !change.undeploy.is_empty() {
            if !detail.is_empty() {
                detail.push_str("<br>");
            }
            detail.push_str(&format!("stop tracking: {}", list(&change.undeploy)));
        }
        let _ = writeln!(
            table,
            "| `{}` | `{}` | {} | {} |",
            code(&change.certificate),
            code(&change.ca),
            detail,
            cell(&change.reason)
        );
    }
    section(out, &format!("{verb} ({})", rows.len()), &table, rows.len());
}

/// The field-by-field diff of every reissue, as a `diff` code block.
fn render_diffs(out: &mut String, plan: &Plan) {
    for change in &plan.changes {
        let Action::Reissue { changes, .. } = &change.action else {
            continue;
        };
        let _ = writeln!(out, "\n**Reissue `{}`:**\n", code(&change.certificate));
        out.push_str("```diff\n");
        for field in changes {
            if let Some(old) = &field.old {
                let _ = writeln!(out, "- {} = {}", fenced(&field.field), fenced(old));
            }
            if let Some(new) = &field.new {
                let _ = writeln!(out, "+ {} = {}", fenced(&field.field), fenced(new));
            }
        }
        out.push_str("```\n");
    }
}

/// A titled section; folded into `<details>` when it has more than `COLLAPSE_AFTER` rows.
fn section(out: &mut String, title: &str, body: &str, rows: usize) {
    if rows > COLLAPSE_AFTER {
        let _ = write!(
            out,
            "\n<details><summary><b>{}</b></summary>\n\n{body}\n</details>\n",
            cell(title)
        );
    } else {
        let _ = write!(out, "\n#### {}\n\n{body}", cell(title));
    }
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{}`", code(item)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text in a table cell or a list item: pipes, HTML, Markdown markup and line breaks cannot
/// escape it.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' | '*' | '_' | '[' | ']' | '\\' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a backtick code span in a table: no backtick can close the span, no pipe can
/// end the cell, no control character survives.
pub fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '`' => out.push('\''),
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a fenced code block: a line break or a fence cannot end the block early.
fn fenced(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Blocked, FieldChange, Warning};
    use crate::serial::Serial;
    use crate::spec::RevocationReason;

    fn change(name: &str, action: Action) -> Change {
        Change {
            certificate: name.to_string(),
            ca: "local".to_string(),
            action,
            reason: format!("reason of {name}"),
            deploy: vec![],
            undeploy: vec![],
        }
    }

    #[test]
    fn a_plan_beyond_a_safety_threshold_says_so_loudly() {
        let mut guarded = plan(vec![]);
        guarded.guards = vec![crate::plan::Guard {
            setting: "max_destructive".into(),
            message: "6 destructive actions (revoke, cancel) exceed `max_destructive = 5`".into(),
        }];
        let text = render(&guarded);
        assert!(
            !text.contains("[!WARNING]"),
            "no changes, no guard section: {text}"
        );
        let mut guarded_changes = guarded.clone();
        guarded_changes.changes = vec![change("web", Action::UpdateSettings { changes: vec![] })];
        let text = render(&guarded_changes);
        assert!(text.contains("> [!WARNING]"), "{text}");
        assert!(
            text.contains("refuses this plan without `--force`"),
            "{text}"
        );
        assert!(text.contains("`max_destructive`"), "{text}");
    }

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            now: time::OffsetDateTime::UNIX_EPOCH,
            changes,
            blocked: vec![],
            unchanged: vec![],
            warnings: vec![],
            guards: vec![],
            schedule: vec![],
            at_risk: vec![],
        }
    }

    fn create() -> Action {
        Action::Create {
            common_name: "a.test".into(),
            sans: vec!["a.test".into()],
            key: "ecdsa-p256".into(),
            validity: "90d".into(),
        }
    }

    fn revoke() -> Action {
        Action::Revoke {
            serial: Serial::parse("0a"),
            reason: RevocationReason::KeyCompromise,
            record_only: false,
            forget: true,
            cancel_order: None,
            cancel_refund: false,
        }
    }

    #[test]
    fn an_empty_plan_says_no_changes() {
        let text = render(&plan(vec![]));
        assert!(text.contains("**No changes.**"), "{text}");
        assert!(!text.contains("| certificate"), "{text}");
    }

    #[test]
    fn summary_counts_per_action_and_one_table_per_action() {
        let text = render(&plan(vec![
            change("a", create()),
            change("b", create()),
            change("c", Action::Forget),
        ]));
        assert!(
            text.contains("**Plan:** 2 to create, 1 to forget.\n"),
            "{text}"
        );
        assert!(text.contains("\n#### create (2)\n"), "{text}");
        assert!(text.contains("\n#### forget (1)\n"), "{text}");
        assert!(
            text.contains(
                "| `a` | `local` | 1 name(s), key ecdsa-p256, validity 90d | reason of a |"
            ),
            "{text}"
        );
        assert!(!text.contains("CAUTION"), "{text}");
        assert!(!text.contains("<details>"), "{text}");
    }

    #[test]
    fn destructive_actions_get_a_loud_section_and_record_only_revokes_do_not() {
        let text = render(&plan(vec![change("gone", revoke())]));
        assert!(text.contains("**1 destructive.**"), "{text}");
        assert!(text.contains("> [!CAUTION]"), "{text}");
        assert!(
            text.contains("> - **revoke** `gone` (CA `local`): serial 0a, reason key\\_compromise, then forget. reason of gone"),
            "{text}"
        );
        let quiet = render(&plan(vec![change(
            "gone",
            Action::Revoke {
                serial: Serial::parse("0a"),
                reason: RevocationReason::Unspecified,
                record_only: true,
                forget: false,
                cancel_order: None,
                cancel_refund: false,
            },
        )]));
        assert!(!quiet.contains("CAUTION"), "{quiet}");
        let cancel = render(&plan(vec![change(
            "p",
            Action::Cancel {
                order_id: "7".into(),
                forget: false,
                refund: true,
            },
        )]));
        assert!(cancel.contains("> - **cancel** `p`"), "{cancel}");
    }

    #[test]
    fn long_tables_are_collapsed_and_short_ones_are_not() {
        let changes = |n: usize| {
            (0..n)
                .map(|i| change(&format!("c{i:02}"), create()))
                .collect::<Vec<_>>()
        };
        let ten = render(&plan(changes(COLLAPSE_AFTER)));
        assert!(!ten.contains("<details>"), "{ten}");
        let eleven = render(&plan(changes(COLLAPSE_AFTER + 1)));
        assert!(
            eleven.contains("<details><summary><b>create (11)</b></summary>"),
            "{eleven}"
        );
        assert!(eleven.contains("</details>"), "{eleven}");
    }

    #[test]
    fn reissues_show_the_field_diff() {
        let text = render(&plan(vec![change(
            "web",
            Action::Reissue {
                same_order: true,
                changes: vec![
                    FieldChange {
                        field: "sans".into(),
                        old: Some("a.test".into()),
                        new: Some("a.test, b.test".into()),
                    },
                    FieldChange {
                        field: "key".into(),
                        old: None,
                        new: Some("rsa-3072".into()),
                    },
                ],
            },
        )]));
        assert!(
            text.contains("**Reissue `web`:**\n\n```diff\n- sans = a.test\n+ sans = a.test, b.test\n+ key = rsa-3072\n```\n"),
            "{text}"
        );
        assert!(text.contains("| same order |"), "{text}");
    }

    #[test]
    fn names_and_reasons_are_escaped() {
        let mut evil = change("a|b`c", Action::Deploy);
        evil.reason = "x | <img src=1> `y` [l](u) *z*\n# h\u{7}".into();
        evil.deploy = vec!["files:/o|ut".into()];
        let mut p = plan(vec![evil]);
        p.blocked.push(Blocked {
            certificate: "q".into(),
            wanted: Some("<script>".into()),
            reason: "a|b".into(),
        });
        p.warnings.push(Warning {
            certificate: "w".into(),
            message: "<b>".into(),
        });
        let text = render(&p);
        assert!(!text.contains("<img"), "{text}");
        assert!(
            !text.contains("<script>") && !text.contains("<b>"),
            "{text}"
        );
        assert!(text.contains("| `a\\|b'c` |"), "{text}");
        assert!(
            text.contains("x \\| &lt;img src=1&gt; \\`y\\` \\[l\\](u) \\*z\\* \\# h\\u{0007}"),
            "{text}"
        );
        assert!(text.contains("deploy: `files:/o\\|ut`"), "{text}");
        assert!(!text.contains('\u{7}'), "{text}");
        // Every table row has exactly its columns' unescaped pipes.
        for line in text.lines().filter(|l| l.starts_with("| `a")) {
            let pipes = line.replace("\\|", "").matches('|').count();
            assert_eq!(pipes, 5, "{line}");
        }
    }

    #[test]
    fn every_action_renders_through_its_generic_description() {
        let actions = [
            create(),
            Action::Adopt {
                order_id: "1".into(),
                status: crate::observed::OrderStatus::Issued,
            },
            Action::Wait {
                order_id: "2".into(),
                dcv: vec![],
            },
            Action::Fetch {
                order_id: "3".into(),
            },
            Action::Deploy,
            Action::Renew {
                serial: "0b".into(),
                not_after: time::OffsetDateTime::UNIX_EPOCH,
                on_order: None,
            },
            revoke(),
            Action::Forget,
        ];
        for action in actions {
            let verb = action.verb();
            let detail = action.detail();
            let text = render(&plan(vec![change("x", action)]));
            assert!(text.contains(&format!("#### {verb} (1)")), "{text}");
            assert!(text.contains(&cell(&detail)), "{text}");
        }
    }
}
