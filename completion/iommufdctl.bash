# bash completion for iommufdctl(1)                              -*- shell-script -*-
#
# Commands, vm subcommands and options from the same words as `iommufdctl help`; live values from
# the broker when it answers (on the --socket the line names, else the default): guest names from
# `iommufdctl --json vm list`, device BDFs from `iommufdctl devices` (for attach only the free
# vfio-pci ones, with --managed every one no guest owns; for detach the guest's own). The broker not answering just means no live values.

_iommufdctl_ctl()
{
    "${_iommufdctl_cmd[@]}" "$@" 2>/dev/null
}

_iommufdctl_vms()
{
    # json-c's pretty printing: the guests' own keys sit at six spaces, their devices' deeper
    _iommufdctl_ctl --json vm list | sed -n 's/^      "name": "\([^"]*\)",\{0,1\}$/\1/p'
}

# $1: free (unowned vfio-pci devices), owner=NAME (NAME's devices) or all
_iommufdctl_bdfs()
{
    # columns: DEVICE DRIVER CDEV GROUP IOMMU NEST DIRTY OWNER RETURNS-TO ("-" where empty)
    _iommufdctl_ctl devices | awk -v want="$1" 'NR > 1 {
        if (want == "free" && $2 == "vfio-pci" && $8 == "-") print $1
        else if (want == "unowned" && $8 == "-") print $1
        else if (want ~ /^owner=/ && $8 == substr(want, 7)) print $1
        else if (want == "all") print $1 }'
}

# $1: the candidates, separated by blanks or newlines (none holds either: guest names and BDFs
# cannot)
_iommufdctl_reply()
{
    local i colon_word
    COMPREPLY=($(compgen -W "$1" -- "$cur"))
    # A BDF holds ':', one of bash's word breaks: bash replaces only the part after the last
    # ':', so that is all a reply may hold (what bash-completion's __ltrim_colon_completions does).
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        colon_word=${cur%"${cur##*:}"}
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"$colon_word"}
        done
    fi
}

_iommufdctl()
{
    local cur prev words cword
    # Words as the user sees them: bash splits "--socket=PATH" and a BDF's ':' into several.
    if declare -F _init_completion >/dev/null; then
        _init_completion -n =: || return
    else
        read -ra words <<<"${COMP_LINE:0:COMP_POINT}"
        [[ ${COMP_LINE:COMP_POINT-1:1} == [[:space:]] ]] && words+=("")
        cword=$((${#words[@]} - 1))
        cur=${words[cword]} prev=${words[cword - 1]}
    fi

    local globals="--socket --json --help --version"
    local commands="status devices vm events metrics exec libvirt-start help"
    local vm_subcommands="list show create attach detach destroy fds"
    local create_options="--cgroup --pid --uuid --handoff --no-nest-parent --allow-plain --dirty-tracking --defer --rlimit-per-process= --memory-mib --viommu --veventq-depth"
    local -a _iommufdctl_cmd=("${words[0]}")
    local cmd="" sub="" i w
    local -a args=()
    local managed=""

    # What the line holds so far: globals (anywhere), the command, vm's subcommand, the rest.
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        case $w in
            --socket) _iommufdctl_cmd+=(--socket "${words[i + 1]}"); ((i++)); continue ;;
            --socket=*) _iommufdctl_cmd+=("$w"); continue ;;
            --json | --help | -h | --version) continue ;;
            --) [[ $cmd == exec ]] && return; continue ;;
        esac
        if [[ -z $cmd ]]; then
            cmd=$w
        elif [[ $cmd == vm && -z $sub ]]; then
            sub=$w
        else
            case $w in
                --cgroup | --pid | --uuid | --handoff | --memory-mib | --vm | --viommu | --virt-id | --veventq-depth | --connect) ((i++)); continue ;;
                --managed) managed=1; continue ;;
                -*) continue ;;
            esac
            # exec: the first other word starts the VMM's command line, which is not ours
            [[ $cmd == exec ]] && return
            args+=("$w")
        fi
    done

    case $prev in
        --socket)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        --cgroup | --pid | --uuid | --memory-mib | --virt-id | --veventq-depth)
            return ;;
        --viommu)
            _iommufdctl_reply "arm-smmuv3 tegra241-cmdqv selftest"
            return ;;
        --handoff)
            _iommufdctl_reply "unbound bound"
            return ;;
        --vm)
            [[ $cmd == exec ]] && _iommufdctl_reply "$(_iommufdctl_vms)"
            return ;;
    esac

    if [[ $cur == -* ]]; then
        local opts=$globals
        case $cmd/$sub in
            vm/create) opts+=" $create_options" ;;
            vm/attach) opts+=" --virt-id --managed" ;;
            exec/) opts+=" --vm --vm-from-argv --" ;;
            libvirt-start/) opts+=" --connect" ;;
        esac
        _iommufdctl_reply "$opts"
        [[ ${COMPREPLY[0]-} == *= ]] && compopt -o nospace
        return
    fi

    if [[ -z $cmd ]]; then
        _iommufdctl_reply "$commands"
        return
    fi
    case $cmd in
        help)
            ((${#args[@]} == 0)) && _iommufdctl_reply "$commands" ;;
        vm)
            if [[ -z $sub ]]; then
                _iommufdctl_reply "$vm_subcommands"
                return
            fi
            case $sub in
                show | destroy | fds)
                    ((${#args[@]} == 0)) && _iommufdctl_reply "$(_iommufdctl_vms)" ;;
                attach)
                    if ((${#args[@]} == 0)); then
                        _iommufdctl_reply "$(_iommufdctl_vms)"
                    elif [[ -n $managed ]]; then
                        # managed: any device no guest owns (the broker takes it from its driver)
                        _iommufdctl_reply "$(_iommufdctl_bdfs unowned)"
                    else
                        _iommufdctl_reply "$(_iommufdctl_bdfs free)"
                    fi ;;
                detach)
                    if ((${#args[@]} == 0)); then
                        _iommufdctl_reply "$(_iommufdctl_vms)"
                    elif ((${#args[@]} == 1)); then
                        _iommufdctl_reply "$(_iommufdctl_bdfs "owner=${args[0]}")"
                    fi ;;
            esac ;;
    esac
} &&
    complete -F _iommufdctl iommufdctl

# ex: filetype=sh
