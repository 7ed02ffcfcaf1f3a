// The --help text. Kept apart from the parser because it is long and only prose.
#include <string>

#include "core/options.h"

namespace crpp {

std::string UsageText() {
  // Same commands and option spellings as criu, so that criu's users find their way around;
  // the descriptions are ours.
  return R"(Usage:
  criu dump|pre-dump -t PID [<options>]
  criu restore [<options>]
  criu check [--feature FEAT] [--extra] [--experimental] [--all]
  criu page-server [<options>]
  criu service [<options>]
  criu dedup
  criu lazy-pages -D DIR [<options>]
  criu cpuinfo dump|check
  criu swrk FD

Commands:
  dump           checkpoint the process tree rooted at PID
  pre-dump       save memory ahead of a dump, to shorten the time tasks stay frozen
  restore        recreate processes from images
  check          tell whether the kernel has what checkpoint/restore needs
  page-server    receive memory pages sent by a dump over the network
  service        serve RPC requests on a socket
  dedup          drop pages already present in a parent image
  lazy-pages     serve memory to a restore started with --lazy-pages
  cpuinfo dump   record this CPU's features in the images
  cpuinfo check  compare this CPU with the one recorded in the images
  swrk           serve RPC requests on an inherited socket (for libcriu)

Options may come before or after the command; long options may be shortened to any
unambiguous prefix. Boolean options also have a --no-X form (e.g. --no-shell-job).

Common options:
  -D|--images-dir DIR   where the images are (default: current directory)
  -W|--work-dir DIR     where logs, pidfiles and stats go (default: the images dir)
  -o|--log-file FILE    log to FILE, relative to the work dir ("-" for stdout);
                        the default is stderr
  -v[v...]|-vNUM|--verbosity[=NUM]
                        each -v raises the log level by one, -vNUM sets it:
                        0 silent, 1 errors, 2 warnings (default), 3 info, 4 debug
  --log-pid             one log file per process
  --pidfile FILE        write the pid of the root task, service or page server
  --display-stats       print dump/restore statistics at the end
  --config FILE         read options from FILE (disables the default config files)
  --no-default-config   do not read /etc/criu/default.conf or ~/.criu/default.conf
  --action-script FILE  run FILE at each stage (see CRTOOLS_SCRIPT_ACTION)
  -L|--libdir DIR       plugin directory
  --close FD            close FD before starting
  -h|--help             show this text
  -V|--version          show the version

Dump and pre-dump:
  -t|--tree PID         root of the process tree to checkpoint
  -R|--leave-running    let the tasks run on after the dump
  -s|--leave-stopped    leave the tasks stopped after the dump
  --track-mem           track memory changes for incremental dumps
  --prev-images-dir DIR images of the previous (pre-)dump, relative to -D
  --pre-dump-mode MODE  splice (default) or read
  --page-server         send pages to a page server (see --address, --port)
  --auto-dedup          drop pages from parent images as they are dumped
  --timeout SEC         give up collecting tasks after SEC seconds (default 10)
  --ghost-limit SIZE    largest deleted file kept in the images (K, M, G suffixes)
  --freeze-cgroup PATH  freeze tasks with this freezer cgroup
  --lazy-pages          leave memory in place for a lazy restore
  --network-lock METHOD iptables (default) or nftables

Restore:
  -d|--restore-detached detach once the tasks are restored (also --daemon)
  -S|--restore-sibling  restore the root task as a sibling (with -d only)
  -r|--root DIR         root directory for the restored tree
  --inherit-fd fd[N]:RES
                        use the already open fd N for resource RES
  --exec-cmd            after restore, exec the command given after "--"
  -J|--join-ns NS:{PID|FILE}[,OPTS]
                        restore into an existing namespace
  --empty-ns net        create the network namespace but leave it unconfigured
  --veth-pair IN=OUT    name of the outer end of a veth device
  --lsm-profile TYPE:NAME, --lsm-mount-context CTX
                        security labels to restore with
  --mntns-compat-mode   use the older mount namespace restore engine
  --weak-sysctls        skip sysctls this kernel does not have
  --file-validation M   filesize or buildid (default)

Dump and restore:
  -j|--shell-job        allow a shell job (shares session and process group with criu)
  -l|--file-locks       handle file locks
  --tcp-established     checkpoint/restore established TCP connections
  --tcp-close           restore TCP connections closed
  --skip-in-flight      ignore TCP connections still being set up
  --link-remap          allow linking unlinked files back
  --ext-unix-sk[=INO,...], -x[INO,...]
                        allow external UNIX sockets
  --external RES        an external resource: mnt[...], dev[...], file[...], tty[...],
                        unix[...], net[...], pid[...], veth[...], macvlan[...]
  -M|--ext-mount-map KEY:VAL|auto
                        external bind mount mapping
  --skip-mnt PATH, --enable-fs FS[,FS...], --force-irmap, --irmap-scan-path PATH,
  --evasive-devices, --enable-external-sharing, --enable-external-masters
                        mount and file handling
  --manage-cgroups[=MODE]
                        none, props, soft (default), full, strict or ignore
  --cgroup-root [CTRL:]PATH, --cgroup-props STR, --cgroup-props-file FILE,
  --cgroup-dump-controller NAME, --cgroup-yard DIR
                        cgroup handling
  --cpu-cap[=CAPS]      fpu, cpu, ins, all, none; ^CAP to drop one
  --stream              go through criu-image-streamer
  --deprecated          allow deprecated features

Page server:
  --address ADDR, --port PORT
                        where the page server listens (or is reached)
  --ps-socket FD        use an already connected socket
  --status-fd FD        write a byte to FD once ready
  --daemon              run in the background
  --tls, --tls-cacert FILE, --tls-cacrl FILE, --tls-cert FILE, --tls-key FILE,
  --tls-no-cn-verify    TLS for page-server connections

Check:
  --feature NAME        check one kernel feature only
  --extra, --experimental, --all
                        also check optional or experimental features

Config files: /etc/criu/default.conf, then ~/.criu/default.conf, then $CRIU_CONFIG_FILE,
then --config FILE, then the command line. One option per line, without the dashes,
optionally followed by its argument; '#' starts a comment.
)";
}

}  // namespace crpp
