#!/bin/sh
cat banner.txt
echo "greeter $* as $(id -un) in $(pwd) on port $GREETER_PORT for $GREETER_NAME"
ls -l greeter.sh | awk '{print $1, $3}'
