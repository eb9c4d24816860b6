# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ocpoll_global_optspecs
    string join \n v/verbose q/quiet log-format= h/help V/version
end

function __fish_ocpoll_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ocpoll_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ocpoll_using_subcommand
    set -l cmd (__fish_ocpoll_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ocpoll -n "__fish_ocpoll_needs_command" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_needs_command" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "validate" -d 'Check instance files and report every problem with file, JSON path, line and column'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "tick" -d 'Poll due resources once, deliver due notifications, exit (for cron)'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "run" -d 'Run the daemon that polls and delivers (what systemd runs)'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "status" -d 'Show last poll, watermark, next due time, outbox depth'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "try" -d 'Poll one resource once as a dry run and show what a poll would do'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "auth" -d 'Authorize an OAuth 2 instance in a browser and keep its tokens in the state'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "state" -d 'Inspect or change the saved state'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "outbox" -d 'Inspect and act on pending and dead-lettered notifications'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "demo" -d 'Poll a local sample API and print each verified event'
complete -c ocpoll -n "__fish_ocpoll_needs_command" -f -a "webhooks" -d 'Webhooks instances: the URL to give the provider'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -l format -d 'Output format' -r -f -a "text\t'One line per problem: path:line:col: json.path: message'
json\t'A JSON array of findings (file, path, line, column, severity, message)'"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -l instances -d 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -l strict -d 'Treat warnings as errors (exit 1), for CI pipelines that check files before deploy'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand validate" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l instance -d 'Poll only this instance (repeatable)' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l deliver-timeout -d 'How long to wait for deliveries before leaving the rest in the outbox' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l instances -d 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l all -d 'Poll every resource now, whether or not it is due'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -l wait -d 'Wait for the state lock instead of exiting 75 when another ocpoll holds it'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand tick" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l metrics-addr -d 'Serve Prometheus metrics (/metrics) and health checks (/healthz, /readyz) on this address, e.g. 127.0.0.1:9464 (also `[daemon] metrics_addr`)' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l listen -d 'Receive webhooks at POST /webhooks/INSTANCE/TOKEN on this address, e.g. 127.0.0.1:8480 (also `[listen] addr`); put a TLS reverse proxy in front of it' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l instances -d 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l foreground -d 'Stay in the foreground and log to stderr (what systemd expects; ocpoll never forks, so this is also what happens without it)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l wait -d 'Wait for the state lock instead of exiting 75 when another ocpoll holds it'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -l migrate -d 'With a PostgreSQL state: create or upgrade its schema first (as `ocpoll state migrate`)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand run" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -l instances -d 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -l json -d 'Print JSON instead of a table'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand status" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -l since -d 'The watermark to pretend: RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01), or a duration before now (1h, 30m, 2days) [default: one hour ago, as a first poll]' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -l pages -d 'Stop after this many pages (of each pathParams value)' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -l records -d 'Show this many records (of each pathParams value)' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -l json -d 'Print one JSON document instead of text'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand try" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -l timeout -d 'How long to wait for the redirect' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -l instances -d 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -l no-browser -d 'Do not open a browser nor listen: print the URL and read the redirected URL from stdin'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand auth" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -f -a "reset" -d 'Rewind or set a watermark, to poll a period again (backfill)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -f -a "forget" -d 'Delete all state of an instance (watermarks and its pending notifications)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and not __fish_seen_subcommand_from reset forget migrate" -f -a "migrate" -d 'Create or upgrade a PostgreSQL state\'s schema (a SQLite file upgrades itself)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -l to -d 'New watermark (RFC 3339, e.g. 2026-11-01T00:00:00Z) [default: forget it; the next poll is a new baseline]' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -s y -l yes -d 'Do not ask for confirmation'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from reset" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -s y -l yes -d 'Do not ask for confirmation'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from forget" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from migrate" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from migrate" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from migrate" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from migrate" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from migrate" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from migrate" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand state; and __fish_seen_subcommand_from migrate" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -f -a "list" -d 'List pending (or dead-lettered) notifications'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -f -a "show" -d 'Print one notification\'s body'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -f -a "retry" -d 'Make dead-lettered (or pending) notifications due again'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and not __fish_seen_subcommand_from list show retry drop" -f -a "drop" -d 'Delete notifications for good'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -l instance -d 'Only this instance\'s notifications' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -l dead -d 'Only dead letters'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from show" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from show" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from show" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l all-dead -d 'Every dead letter'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l instance -d 'Every notification of this instance (pending and dead)' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -l all-dead -d 'Every dead letter'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s y -l yes -d 'Do not ask for confirmation'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand outbox; and __fish_seen_subcommand_from drop" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand demo" -l duration -d 'Stop after this long (e.g. 30s) [default: until Ctrl-C]' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand demo" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand demo" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand demo" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand demo" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand demo" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and not __fish_seen_subcommand_from url" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and not __fish_seen_subcommand_from url" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and not __fish_seen_subcommand_from url" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and not __fish_seen_subcommand_from url" -s h -l help -d 'Print help'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and not __fish_seen_subcommand_from url" -s V -l version -d 'Print version'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and not __fish_seen_subcommand_from url" -f -a "url" -d 'Print the URL a provider posts a webhooks instance\'s events to'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -l base -d 'What comes before /webhooks/... : the public address of the reverse proxy, e.g. https://hooks.example.com (default: `[listen] public_url`, else http://`[listen] addr`)' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -l grace -d 'How long the old token keeps working after --rotate' -r
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -l config -d 'Config file (TOML) [default: ocpoll/config.toml in the platform config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -l instances -d 'Folder of instance files [default: ./instances.d if it exists, else instances.d in the config folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -l state -d 'State file (SQLite), or postgres://USER@HOST/DB for a database several daemons share [default: state.db in the platform state folder]' -r -F
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -l log-format -d 'Log format: text for people, json for journald and log shippers' -r -f -a "text\t''
json\t''"
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -l rotate -d 'Replace the token; the old URL keeps working for --grace'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -s v -l verbose -d 'More log output (-v debug, -vv trace)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -s q -l quiet -d 'Less log output (-q warnings and errors only, -qq errors only)'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ocpoll -n "__fish_ocpoll_using_subcommand webhooks; and __fish_seen_subcommand_from url" -s V -l version -d 'Print version'
