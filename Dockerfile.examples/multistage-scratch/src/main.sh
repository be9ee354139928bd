#!/bin/sh
echo "app @VERSION@ says hello, $1"
busybox cat /app/assets/motd
