#!/bin/sh
# A per-task agent for agentpool's `exec` handler (mode = "per_task"). POSIX sh only.
#
# agentpool starts it once per task with the task's input JSON on stdin (then closed) and
# AGENTPOOL_TASK_ID, AGENTPOOL_AGENT_ID, AGENTPOOL_POOL, AGENTPOOL_ROLE and AGENTPOOL_CONFIG in
# its environment. Whatever it prints is the output: JSON if it is JSON, else a string. A
# non-zero exit fails the task, quoting the end of stderr.
#
#   upper.sh        prints the input upper-cased: {"text":"hi"} gives {"TEXT":"HI"} (JSON)
#   upper.sh text   prints a string input upper-cased without its quotes: "hi" gives HI,
#                   which is not JSON and so comes back as the string "HI"
#
# An input that mentions "fail" makes it exit with status 3 after a line on stderr.
#
# Use: handler = { type = "exec", mode = "per_task", command = ["examples/agents/upper.sh"] }

input=$(cat)
case "$input" in
*fail*)
    echo "upper.sh: failing on purpose for task $AGENTPOOL_TASK_ID" >&2
    exit 3
    ;;
esac
if [ "$1" = text ]; then
    printf '%s\n' "$input" | sed 's/^"//; s/"$//' | tr '[:lower:]' '[:upper:]'
else
    printf '%s\n' "$input" | tr '[:lower:]' '[:upper:]'
fi
