
use builtin;
use str;

set edit:completion:arg-completer[ocpoll] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'ocpoll'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'ocpoll'= {
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand validate 'Check instance files and report every problem with file, JSON path, line and column'
            cand tick 'Poll due resources once, deliver due notifications, exit (for cron)'
            cand run 'Run the daemon that polls and delivers (what systemd runs)'
            cand status 'Show last poll, watermark, next due time, outbox depth'
            cand try 'Poll one resource once as a dry run and show what a poll would do'
            cand state 'Inspect or change the saved state'
            cand outbox 'Inspect and act on pending and dead-lettered notifications'
            cand demo 'Poll a local sample API and print each verified event'
        }
        &'ocpoll;validate'= {
            cand --format 'Output format'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --instances 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --strict 'Treat warnings as errors (exit 1), for CI pipelines that check files before deploy'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;tick'= {
            cand --instance 'Poll only this instance (repeatable)'
            cand --deliver-timeout 'How long to wait for deliveries before leaving the rest in the outbox'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --instances 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --all 'Poll every resource now, whether or not it is due'
            cand --wait 'Wait for the state lock instead of exiting 75 when another ocpoll holds it'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;run'= {
            cand --metrics-addr 'Serve Prometheus metrics (/metrics) and health checks (/healthz, /readyz) on this address, e.g. 127.0.0.1:9464 (also `[daemon] metrics_addr`)'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --instances 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --foreground 'Stay in the foreground and log to stderr (what systemd expects; ocpoll never forks, so this is also what happens without it)'
            cand --wait 'Wait for the state lock instead of exiting 75 when another ocpoll holds it'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;status'= {
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --instances 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --json 'Print JSON instead of a table'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;try'= {
            cand --since 'The watermark to pretend: RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01), or a duration before now (1h, 30m, 2days) [default: one hour ago, as a first poll]'
            cand --pages 'Stop after this many pages (of each pathParams value)'
            cand --records 'Show this many records (of each pathParams value)'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --json 'Print one JSON document instead of text'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;state'= {
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand reset 'Rewind or set a watermark, to poll a period again (backfill)'
            cand forget 'Delete all state of an instance (watermarks and its pending notifications)'
        }
        &'ocpoll;state;reset'= {
            cand --to 'New watermark (RFC 3339, e.g. 2026-11-01T00:00:00Z) [default: forget it; the next poll is a new baseline]'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;state;forget'= {
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;outbox'= {
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List pending (or dead-lettered) notifications'
            cand show 'Print one notification''s body'
            cand retry 'Make dead-lettered (or pending) notifications due again'
            cand drop 'Delete notifications for good'
        }
        &'ocpoll;outbox;list'= {
            cand --instance 'Only this instance''s notifications'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --dead 'Only dead letters'
            cand --json 'Print JSON instead of a table'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;outbox;show'= {
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;outbox;retry'= {
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --all-dead 'Every dead letter'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;outbox;drop'= {
            cand --instance 'Every notification of this instance (pending and dead)'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --state 'State file (SQLite) [default: state.db in the platform state folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand --all-dead 'Every dead letter'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ocpoll;demo'= {
            cand --duration 'Stop after this long (e.g. 30s) [default: until Ctrl-C]'
            cand --config 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]'
            cand --log-format 'Log format: text for people, json for journald and log shippers'
            cand -v 'More log output (-v debug, -vv trace)'
            cand --verbose 'More log output (-v debug, -vv trace)'
            cand -q 'Less log output (-q warnings and errors only, -qq errors only)'
            cand --quiet 'Less log output (-q warnings and errors only, -qq errors only)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
    ]
    $completions[$command]
}
