#!/bin/bash
# Configure and start one part of the all-in-one OpenStack inside the testcloud machine.
# Run by migrate.rehearsal.testcloud.services as `aio.sh PHASE`; every phase is idempotent and
# leaves a marker /var/lib/migrate-testcloud/PHASE.done when it completed.
# /srv/testcloud/env (mode 0600) sets IP (management address), PW_DB, PW_RABBIT, PW_ADMIN, PW_SERVICE,
# METADATA_SECRET, VIRT_TYPE (kvm|qemu), PROVIDER_* and TENANT_* (see services.py).
set -euo pipefail
PHASE=$1
set -a
# shellcheck disable=SC1091
. /srv/testcloud/env
set +a
MARKS=/var/lib/migrate-testcloud
mkdir -p "$MARKS"
ini() { crudini --set "$@"; }
log() { echo "[aio $PHASE] $*"; }

export OS_AUTH_URL="http://$IP:5000/v3" OS_USERNAME=admin OS_PASSWORD="$PW_ADMIN" \
  OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
  OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne
os() { timeout 180 openstack "$@"; }

wait_port() {  # host port seconds
  local i
  for i in $(seq 1 "$3"); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "port $1:$2 did not open in $3 s" >&2; return 1
}

authtoken() {  # file user
  ini "$1" keystone_authtoken www_authenticate_uri "http://$IP:5000"
  ini "$1" keystone_authtoken auth_url "http://$IP:5000"
  ini "$1" keystone_authtoken memcached_servers 127.0.0.1:11211
  ini "$1" keystone_authtoken auth_type password
  ini "$1" keystone_authtoken project_domain_name Default
  ini "$1" keystone_authtoken user_domain_name Default
  ini "$1" keystone_authtoken project_name service
  ini "$1" keystone_authtoken username "$2"
  ini "$1" keystone_authtoken password "$PW_SERVICE"
  ini "$1" keystone_authtoken region_name RegionOne
}

service_auth() {  # file section user
  ini "$1" "$2" auth_url "http://$IP:5000"
  ini "$1" "$2" auth_type password
  ini "$1" "$2" project_domain_name Default
  ini "$1" "$2" user_domain_name Default
  ini "$1" "$2" region_name RegionOne
  ini "$1" "$2" project_name service
  ini "$1" "$2" username "$3"
  ini "$1" "$2" password "$PW_SERVICE"
}

db() {  # name user
  mysql -e "CREATE DATABASE IF NOT EXISTS $1;
    CREATE USER IF NOT EXISTS '$2'@'localhost' IDENTIFIED BY '$PW_DB';
    ALTER USER '$2'@'localhost' IDENTIFIED BY '$PW_DB';
    GRANT ALL PRIVILEGES ON $1.* TO '$2'@'localhost';"
}

dburl() { echo "mysql+pymysql://$1:$PW_DB@localhost/$2"; }

start() { systemctl enable "$@" >/dev/null 2>&1 || true; systemctl restart "$@"; }

endpoint() {  # service-name type port-path
  if ! os service show "$1" >/dev/null 2>&1; then
    os service create --name "$1" "$2" >/dev/null
  fi
  local iface
  for iface in public internal admin; do
    if [ -z "$(os endpoint list --service "$1" --interface $iface -f value -c ID)" ]; then
      os endpoint create --region RegionOne "$1" $iface "http://$IP:$3" >/dev/null
    fi
  done
}

service_user() {  # name
  if ! os user show "$1" --domain Default >/dev/null 2>&1; then
    os user create --domain Default --password "$PW_SERVICE" "$1" >/dev/null
  else
    os user set --password "$PW_SERVICE" "$1"
  fi
  os role add --project service --user "$1" admin
  # Cinder lets only a service deletes the attachments nova made (OSSN-0092): the token nova
  # sends along must carry the "service" role, or volumes stay in-use after their instance
  # is deleted.
  os role show service >/dev/null 2>&1 || os role create service >/dev/null
  os role add --project service --user "$1" service
}

dhcp_missing() {  # NETWORK...: those whose DHCP server (dnsmasq) is not running
  local name net
  for name in "$@"; do
    net=$(os network show "$name" -f value -c id)
    pgrep -f "dnsmasq.*/var/lib/neutron/dhcp/$net/" >/dev/null || echo "$name"
  done
}

wait_dhcp() {  # seconds NETWORK...: every one has its dnsmasq within that time
  local deadline=$((SECONDS + $1))
  shift
  until [ -z "$(dhcp_missing "$@")" ]; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 2
  done
}

case "$PHASE" in
base)
  # Debian's API defaults (8-16 uwsgi processes each) take minutes and gigabytes here.
  for f in /etc/*/*-uwsgi.ini; do
    sed -i 's/^processes = .*/processes = 2/' "$f"
  done
  # neutron-api is eventlet code: with uwsgi's 32 threads a worker wedges for good on the
  # first AMQP reconnect ("greenlet.error: cannot switch to a different thread").
  sed -i 's/^threads = .*/threads = 1/' /etc/neutron/neutron-api-uwsgi.ini
  cat > /etc/mysql/mariadb.conf.d/99-openstack.cnf <<EOF
[mysqld]
bind-address = 127.0.0.1
default-storage-engine = innodb
innodb_file_per_table = on
max_connections = 1024
collation-server = utf8mb4_general_ci
character-set-server = utf8mb4
innodb_buffer_pool_size = 64M
EOF
  start mariadb
  start memcached
  start rabbitmq-server
  for i in $(seq 1 60); do rabbitmqctl await_startup >/dev/null 2>&1 && break; sleep 1; done
  rabbitmqctl list_users -q | grep -q '^openstack' || rabbitmqctl add_user openstack "$PW_RABBIT"
  rabbitmqctl change_password openstack "$PW_RABBIT" >/dev/null
  rabbitmqctl set_permissions openstack ".*" ".*" ".*" >/dev/null
  ;;
keystone)
  db keystone keystone
  ini /etc/keystone/keystone.conf database connection "$(dburl keystone keystone)"
  ini /etc/keystone/keystone.conf token provider fernet
  ini /etc/keystone/keystone.conf cache enabled true
  ini /etc/keystone/keystone.conf cache backend dogpile.cache.memcached
  ini /etc/keystone/keystone.conf cache memcache_servers 127.0.0.1:11211
  su -s /bin/sh -c "keystone-manage db_sync" keystone
  keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
  keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
  keystone-manage bootstrap --bootstrap-password "$PW_ADMIN" \
    --bootstrap-admin-url "http://$IP:5000/v3/" \
    --bootstrap-internal-url "http://$IP:5000/v3/" \
    --bootstrap-public-url "http://$IP:5000/v3/" \
    --bootstrap-region-id RegionOne
  start keystone
  wait_port "$IP" 5000 60
  os project show service >/dev/null 2>&1 || \
    os project create --domain Default --description "Service project" service >/dev/null
  os role show member >/dev/null 2>&1 || os role create member >/dev/null
  ;;
glance)
  db glance glance
  service_user glance
  endpoint glance image 9292
  f=/etc/glance/glance-api.conf
  ini $f database connection "$(dburl glance glance)"
  authtoken $f glance
  ini $f paste_deploy flavor keystone
  ini $f DEFAULT workers 1
  ini $f DEFAULT enabled_backends fs:file
  ini $f glance_store default_backend fs
  ini $f fs filesystem_store_datadir /var/lib/glance/images/
  ini $f oslo_limit auth_url "http://$IP:5000"
  chown glance:glance /var/lib/glance/images
  su -s /bin/sh -c "glance-manage db_sync" glance
  start glance-api
  wait_port "$IP" 9292 90
  ;;
placement)
  db placement placement
  service_user placement
  endpoint placement placement 8778
  f=/etc/placement/placement.conf
  ini $f placement_database connection "$(dburl placement placement)"
  ini $f api auth_strategy keystone
  authtoken $f placement
  su -s /bin/sh -c "placement-manage db sync" placement
  start placement-api
  wait_port "$IP" 8778 90
  ;;
nova)
  db nova_api nova; db nova nova; db nova_cell0 nova
  service_user nova
  endpoint nova compute 8774/v2.1
  f=/etc/nova/nova.conf
  ini $f DEFAULT transport_url "rabbit://openstack:$PW_RABBIT@127.0.0.1:5672/"
  ini $f DEFAULT my_ip "$IP"
  ini $f DEFAULT force_config_drive true
  ini $f DEFAULT state_path /var/lib/nova
  ini $f DEFAULT instances_path /var/lib/nova/instances
  ini $f api_database connection "$(dburl nova nova_api)"
  ini $f database connection "$(dburl nova nova)"
  ini $f api auth_strategy keystone
  authtoken $f nova
  service_auth $f service_user nova
  ini $f service_user send_service_user_token true
  ini $f vnc enabled false
  ini $f spice enabled false
  ini $f glance api_servers "http://$IP:9292"
  ini $f oslo_concurrency lock_path /var/lib/nova/tmp
  service_auth $f placement placement
  service_auth $f neutron neutron
  ini $f neutron service_metadata_proxy true
  ini $f neutron metadata_proxy_shared_secret "$METADATA_SECRET"
  ini $f libvirt virt_type "$VIRT_TYPE"
  # nova-compute-kvm's own file (read after nova.conf) says virt_type=kvm.
  ini /etc/nova/nova-compute.conf libvirt virt_type "$VIRT_TYPE"
  # Under KVM, plain host-passthrough fails here: KVM refuses the host's
  # IA32_ARCH_CAPABILITIES MSR ("failed to set MSR 0x10a"), and the guest kernel's
  # cmpxchg16b hits a KVM emulation failure; without both, qemu starts (docs/testcloud.md).
  if [ "$VIRT_TYPE" = kvm ]; then
    ini $f libvirt cpu_mode host-passthrough
    ini $f libvirt cpu_model_extra_flags -arch-capabilities,-cx16
  else
    ini $f libvirt cpu_mode none
    crudini --del $f libvirt cpu_model_extra_flags
  fi
  ini $f scheduler discover_hosts_in_cells_interval 20
  ini $f scheduler workers 1
  ini $f conductor workers 1
  ini $f compute cpu_allocation_ratio 8.0
  ini $f DEFAULT ram_allocation_ratio 1.5
  ini $f DEFAULT reserved_host_memory_mb 256
  ini $f os_vif_linux_bridge use_ipv6 false
  # libvirt in a container: qemu runs as root (the bound /dev/kvm is root's), no cgroups
  # or mount namespaces of its own, no security driver.
  q=/etc/libvirt/qemu.conf
  grep -q '^# migrate testcloud' $q || cat >> $q <<'EOF'
# migrate testcloud
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
namespaces = [ ]
security_driver = "none"
EOF
  chown nova:nova /var/lib/nova/instances
  start virtlogd libvirtd
  su -s /bin/sh -c "nova-manage api_db sync" nova
  nova-manage cell_v2 list_cells 2>/dev/null | grep -q ' cell0 ' || \
    su -s /bin/sh -c "nova-manage cell_v2 map_cell0" nova
  nova-manage cell_v2 list_cells 2>/dev/null | grep -q ' cell1 ' || \
    su -s /bin/sh -c "nova-manage cell_v2 create_cell --name=cell1" nova
  su -s /bin/sh -c "nova-manage db sync" nova
  start nova-api nova-conductor nova-scheduler nova-compute
  wait_port "$IP" 8774 120
  for i in $(seq 1 60); do
    os compute service list --service nova-compute -f value -c State 2>/dev/null | grep -q up && break
    sleep 2
  done
  su -s /bin/sh -c "nova-manage cell_v2 discover_hosts" nova
  ;;
neutron)
  db neutron neutron
  service_user neutron
  endpoint neutron network 9696
  f=/etc/neutron/neutron.conf
  ini $f database connection "$(dburl neutron neutron)"
  ini $f DEFAULT core_plugin ml2
  ini $f DEFAULT service_plugins router
  ini $f DEFAULT transport_url "rabbit://openstack:$PW_RABBIT@127.0.0.1:5672/"
  ini $f DEFAULT auth_strategy keystone
  ini $f DEFAULT notify_nova_on_port_status_changes true
  ini $f DEFAULT notify_nova_on_port_data_changes true
  ini $f DEFAULT dhcp_agents_per_network 1
  ini $f DEFAULT rpc_workers 1
  ini $f DEFAULT rpc_state_report_workers 1
  authtoken $f neutron
  service_auth $f nova nova
  ini $f oslo_concurrency lock_path /var/lib/neutron/tmp
  ini $f experimental linuxbridge true  # Zed marks linuxbridge experimental
  m=/etc/neutron/plugins/ml2/ml2_conf.ini
  ini $m ml2 type_drivers flat,vxlan
  ini $m ml2 tenant_network_types vxlan
  ini $m ml2 mechanism_drivers linuxbridge,l2population
  ini $m ml2 extension_drivers port_security
  ini $m ml2_type_flat flat_networks provider
  ini $m ml2_type_vxlan vni_ranges 1:1000
  ini $m securitygroup enable_ipset true
  l=/etc/neutron/plugins/ml2/linuxbridge_agent.ini
  ini $l linux_bridge physical_interface_mappings provider:prov0
  ini $l vxlan enable_vxlan true
  ini $l vxlan local_ip "$IP"
  ini $l vxlan l2_population true
  ini $l securitygroup enable_security_group true
  ini $l securitygroup firewall_driver iptables
  ini /etc/neutron/l3_agent.ini DEFAULT interface_driver linuxbridge
  d=/etc/neutron/dhcp_agent.ini
  ini $d DEFAULT interface_driver linuxbridge
  ini $d DEFAULT dhcp_driver neutron.agent.linux.dhcp.Dnsmasq
  ini $d DEFAULT enable_isolated_metadata true
  ini $d DEFAULT force_metadata true
  ini /etc/neutron/metadata_agent.ini DEFAULT nova_metadata_host "$IP"
  ini /etc/neutron/metadata_agent.ini DEFAULT metadata_proxy_shared_secret "$METADATA_SECRET"
  ini /etc/neutron/metadata_agent.ini DEFAULT metadata_workers 1
  ip link set prov0 up
  su -s /bin/sh -c "neutron-db-manage --config-file $f --config-file $m upgrade head" neutron
  start neutron-api neutron-rpc-server 2>/dev/null || start neutron-server
  wait_port "$IP" 9696 120
  start neutron-linuxbridge-agent neutron-dhcp-agent neutron-l3-agent neutron-metadata-agent
  for i in $(seq 1 60); do
    [ "$(timeout 30 openstack network agent list -f value -c Alive | grep -c True)" -ge 4 ] && break
    sleep 2
  done
  ;;
networks)
  if ! os network show provider >/dev/null 2>&1; then
    os network create --share --external --provider-physical-network provider \
      --provider-network-type flat provider >/dev/null
  fi
  if ! os subnet show provider-v4 >/dev/null 2>&1; then
    os subnet create --network provider --subnet-range "$PROVIDER_CIDR" \
      --gateway "$PROVIDER_GATEWAY" --allocation-pool "start=$PROVIDER_START,end=$PROVIDER_END" \
      provider-v4 >/dev/null
  fi
  if ! os network show tenant >/dev/null 2>&1; then
    os network create tenant >/dev/null
  fi
  if ! os subnet show tenant-v4 >/dev/null 2>&1; then
    os subnet create --network tenant --subnet-range "$TENANT_CIDR" tenant-v4 >/dev/null
  fi
  if ! os router show router >/dev/null 2>&1; then
    os router create router >/dev/null
    os router add subnet router tenant-v4
    os router set --external-gateway provider router
  fi
  os flavor show m1.tiny >/dev/null 2>&1 || \
    os flavor create --vcpus 1 --ram 256 --disk 2 m1.tiny >/dev/null
  os flavor show m1.small >/dev/null 2>&1 || \
    os flavor create --vcpus 1 --ram 512 --disk 4 m1.small >/dev/null
  if ! os security group show ssh-icmp >/dev/null 2>&1; then
    os security group create ssh-icmp >/dev/null
    os security group rule create --protocol tcp --dst-port 22 ssh-icmp >/dev/null
    os security group rule create --protocol icmp ssh-icmp >/dev/null
  fi
  # neutron-dhcp-agent can wedge at its first start ("greenlet.error: cannot switch to a
  # different thread" in its privsep helper): no network then ever gets DHCP, and every
  # guest later times out. Restarting it once clears that.
  if ! wait_dhcp 90 provider tenant; then
    log "no dnsmasq for $(dhcp_missing provider tenant | xargs) after 90 s:" \
      "restarting neutron-dhcp-agent"
    systemctl restart neutron-dhcp-agent
    if ! wait_dhcp 120 provider tenant; then
      echo "neutron-dhcp-agent serves no DHCP on $(dhcp_missing provider tenant | xargs)" >&2
      exit 1
    fi
  fi
  ;;
guest)
  # /srv/guest holds root.raw, vmlinuz, initrd.img (built on the host, see guest.py).
  if ! os image show testcloud-guest >/dev/null 2>&1; then
    qemu-img convert -O qcow2 /srv/guest/root.raw /srv/guest/root.qcow2
    os image create --container-format aki --disk-format aki --public \
      --file /srv/guest/vmlinuz testcloud-guest-kernel >/dev/null
    os image create --container-format ari --disk-format ari --public \
      --file /srv/guest/initrd.img testcloud-guest-initrd >/dev/null
    kid=$(os image show testcloud-guest-kernel -f value -c id)
    rid=$(os image show testcloud-guest-initrd -f value -c id)
    os image create --container-format bare --disk-format qcow2 --public \
      --property kernel_id="$kid" --property ramdisk_id="$rid" \
      --property os_command_line="root=/dev/vda rw console=ttyS0 earlyprintk=serial,ttyS0" \
      --file /srv/guest/root.qcow2 testcloud-guest >/dev/null
    rm -f /srv/guest/root.qcow2
  fi
  if ! os keypair show testcloud >/dev/null 2>&1; then
    os keypair create --public-key /srv/guest/id_ed25519.pub testcloud >/dev/null
  fi
  ;;
ceph)
  # A single-node Ceph 16: one mon, one mgr, one OSD whose BlueStore lives in a sparse
  # file on the bound /var/lib/ceph (no loop device, no kernel client needed).
  if [ ! -f /etc/ceph/ceph.conf ]; then
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat > /etc/ceph/ceph.conf <<EOF
[global]
fsid = $fsid
mon initial members = aio
mon host = $IP
public network = $MGMT_CIDR
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon allow pool delete = true
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 21474836480
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728
[mon]
mon data avail warn = 5
EOF
  fi
  fsid=$(crudini --get /etc/ceph/ceph.conf global fsid)
  if [ ! -f /var/lib/ceph/mon/ceph-aio/done ]; then
    rm -rf /var/lib/ceph/mon/ceph-aio /tmp/ceph.mon.keyring /tmp/monmap
    ceph-authtool --create-keyring /tmp/ceph.mon.keyring --gen-key -n mon. --cap mon 'allow *'
    ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key \
      -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' \
      --cap mgr 'allow *'
    mkdir -p /var/lib/ceph/bootstrap-osd
    ceph-authtool --create-keyring /var/lib/ceph/bootstrap-osd/ceph.keyring --gen-key \
      -n client.bootstrap-osd --cap mon 'profile bootstrap-osd' --cap mgr 'allow r'
    ceph-authtool /tmp/ceph.mon.keyring --import-keyring /etc/ceph/ceph.client.admin.keyring
    ceph-authtool /tmp/ceph.mon.keyring --import-keyring \
      /var/lib/ceph/bootstrap-osd/ceph.keyring
    monmaptool --create --add aio "$IP" --fsid "$fsid" /tmp/monmap
    mkdir -p /var/lib/ceph/mon/ceph-aio
    chown -R ceph:ceph /var/lib/ceph /tmp/ceph.mon.keyring /tmp/monmap
    su -s /bin/sh -c "ceph-mon --mkfs -i aio --monmap /tmp/monmap \
      --keyring /tmp/ceph.mon.keyring" ceph
    touch /var/lib/ceph/mon/ceph-aio/done
  fi
  start ceph-mon@aio
  for i in $(seq 1 60); do timeout 5 ceph -s >/dev/null 2>&1 && break; sleep 1; done
  ceph mon enable-msgr2 >/dev/null 2>&1 || true
  if [ ! -f /var/lib/ceph/mgr/ceph-aio/keyring ]; then
    mkdir -p /var/lib/ceph/mgr/ceph-aio
    ceph auth get-or-create mgr.aio mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
      > /var/lib/ceph/mgr/ceph-aio/keyring
    chown -R ceph:ceph /var/lib/ceph/mgr
  fi
  start ceph-mgr@aio
  if [ ! -f /var/lib/ceph/osd/ceph-0/done ]; then
    rm -rf /var/lib/ceph/osd/ceph-0
    uuid=$(cat /proc/sys/kernel/random/uuid)
    ceph osd rm 0 >/dev/null 2>&1 || true
    ceph auth del osd.0 >/dev/null 2>&1 || true
    osd_id=$(ceph osd new "$uuid")
    [ "$osd_id" = 0 ] || { echo "expected osd 0, got $osd_id" >&2; exit 1; }
    mkdir -p /var/lib/ceph/osd/ceph-0
    ceph auth get-or-create osd.0 mon 'allow profile osd' mgr 'allow profile osd' \
      osd 'allow *' > /var/lib/ceph/osd/ceph-0/keyring
    chown -R ceph:ceph /var/lib/ceph/osd
    su -s /bin/sh -c "ceph-osd -i 0 --mkfs --osd-uuid $uuid" ceph
    touch /var/lib/ceph/osd/ceph-0/done
  fi
  start ceph-osd@0
  for i in $(seq 1 90); do
    ceph osd stat | grep -q '1 up' && break
    sleep 2
  done
  for pool in volumes images; do
    if ! ceph osd pool ls | grep -qx $pool; then
      ceph osd pool create $pool 16 16 >/dev/null
      rbd pool init $pool
    fi
  done
  ceph auth get-or-create client.cinder mon 'profile rbd' \
    osd 'profile rbd pool=volumes, profile rbd-read-only pool=images' mgr 'profile rbd' \
    > /etc/ceph/ceph.client.cinder.keyring
  ;;
cinder)
  db cinder cinder
  service_user cinder
  endpoint cinderv3 volumev3 '8776/v3/%(project_id)s'
  f=/etc/cinder/cinder.conf
  secret=$(crudini --get /etc/ceph/ceph.conf global fsid)
  ini $f database connection "$(dburl cinder cinder)"
  ini $f DEFAULT transport_url "rabbit://openstack:$PW_RABBIT@127.0.0.1:5672/"
  ini $f DEFAULT auth_strategy keystone
  ini $f DEFAULT my_ip "$IP"
  ini $f DEFAULT enabled_backends ceph
  ini $f DEFAULT default_volume_type ceph
  ini $f DEFAULT glance_api_servers "http://$IP:9292"
  authtoken $f cinder
  ini $f oslo_concurrency lock_path /var/lib/cinder/tmp
  ini $f ceph volume_driver cinder.volume.drivers.rbd.RBDDriver
  ini $f ceph volume_backend_name ceph
  ini $f ceph rbd_pool volumes
  ini $f ceph rbd_ceph_conf /etc/ceph/ceph.conf
  ini $f ceph rbd_user cinder
  ini $f ceph rbd_secret_uuid "$secret"
  ini $f ceph rbd_flatten_volume_from_snapshot false
  ini $f ceph rbd_max_clone_depth 5
  ini $f ceph report_discard_supported true
  chown cinder:cinder /etc/ceph/ceph.client.cinder.keyring
  su -s /bin/sh -c "cinder-manage db sync" cinder
  # nova attaches RBD volumes through qemu's own client, authenticated by a libvirt secret.
  n=/etc/nova/nova.conf
  ini $n cinder os_region_name RegionOne
  ini $n libvirt rbd_user cinder
  ini $n libvirt rbd_secret_uuid "$secret"
  if ! virsh secret-list | grep -q "$secret"; then
    cat > /tmp/secret.xml <<EOF
<secret ephemeral='no' private='no'>
  <uuid>$secret</uuid>
  <usage type='ceph'><name>client.cinder secret</name></usage>
</secret>
EOF
    virsh secret-define --file /tmp/secret.xml >/dev/null
  fi
  # libvirt 9 refuses the value on the command line; a root-only file holds it briefly.
  umask 077
  ceph auth get-key client.cinder > /tmp/cinder.key
  virsh secret-set-value --secret "$secret" --file /tmp/cinder.key >/dev/null
  rm -f /tmp/cinder.key
  umask 022
  start cinder-api cinder-scheduler cinder-volume
  systemctl restart nova-compute nova-api
  wait_port "$IP" 8776 120
  for i in $(seq 1 60); do
    os volume service list -f value -c Binary -c State 2>/dev/null \
      | grep -q 'cinder-volume up' && break
    sleep 2
  done
  os volume type show ceph >/dev/null 2>&1 || \
    os volume type create --property volume_backend_name=ceph ceph >/dev/null
  ;;
keymanager)
  # Encrypted volumes need a key manager that cinder (it makes the key of each volume) and
  # nova (it opens the volume for qemu) share. No Barbican: Zed's nova and cinder still ship
  # the fixed-key ConfKeyManager, enough for a test cloud whose volumes protect nothing
  # (every volume gets the same key). The key is made here once and lives only in root's
  # and each service's own 0600 files (conf.d files oslo.config reads after the .conf); it is
  # never printed. Qemu opens LUKS on RBD itself (nova's native LUKS: provider luks), and
  # cinder writes LUKS with qemu-img: no dm-crypt, which this kernel's containers lack.
  key=/var/lib/migrate-testcloud/fixed-key
  umask 077
  [ -s $key ] || openssl rand -hex 32 > $key
  for svc in nova cinder; do
    d=/etc/$svc/$svc.conf.d
    install -d -m 0750 -o root -g $svc $d
    { printf '[key_manager]\nbackend = %s.keymgr.conf_key_mgr.ConfKeyManager\n' $svc
      printf 'fixed_key = %s\n' "$(cat $key)"; } > $d/key-manager.conf.new
    chown $svc:$svc $d/key-manager.conf.new
    mv $d/key-manager.conf.new $d/key-manager.conf
  done
  umask 022
  # Cinder writes LUKS with qemu-img, whose QEMU 7.2 sizes the key slot's PBKDF by timing a
  # first pass in thread CPU time and gives up when that reads 0 ms ("Unable to get accurate
  # CPU usage"): now and then on this shared host, and cinder does not retry (the volume is
  # in error). The RBD driver runs qemu-img by PATH, not through rootwrap, and the services'
  # init scripts set PATH=/sbin:/usr/sbin:/bin:/usr/bin: a wrapper in /usr/local/sbin was
  # never found (the official CI of session 11 failed on it). /sbin is /usr/sbin here, first
  # on that PATH and on rootwrap's exec_dirs, so the wrapper lives there; it tries such a run
  # up to 5 times and notes each retry in /var/log/migrate-qemu-img-retries.log.
  rm -f /usr/local/sbin/qemu-img
  cat > /usr/sbin/qemu-img.new <<'EOF'
#!/bin/sh
# migrate testcloud (aio.sh keymanager): qemu-img, retried on QEMU 7.2's PBKDF timing failure
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for try in 1 2 3 4 5; do
  /usr/bin/qemu-img "$@" 2>"$err" && { cat "$err" >&2; exit 0; }
  rc=$?
  grep -q 'Unable to get accurate CPU usage' "$err" && [ $try -lt 5 ] || break
  echo "$(date -Is) try $try: Unable to get accurate CPU usage; again" \
    >> /var/log/migrate-qemu-img-retries.log
done
cat "$err" >&2
exit $rc
EOF
  chmod 0755 /usr/sbin/qemu-img.new
  mv /usr/sbin/qemu-img.new /usr/sbin/qemu-img
  systemctl restart nova-compute cinder-api cinder-volume
  wait_port "$IP" 8776 120
  for i in $(seq 1 60); do
    os volume service list -f value -c Binary -c State 2>/dev/null \
      | grep -q 'cinder-volume up' && break
    sleep 2
  done
  for i in $(seq 1 60); do
    os compute service list --service nova-compute -f value -c State 2>/dev/null | grep -q up && break
    sleep 2
  done
  ;;
estate)
  # What tests/testcloud/estate/migrate.yaml names: its flavors (instances boot from a
  # volume, so the flavor's disk is unused) and its encrypted volume type (LUKS opened by
  # qemu on the hypervisor: front-end), for protection level 3.
  os flavor show tc.c1m1 >/dev/null 2>&1 || \
    os flavor create --vcpus 1 --ram 1024 --disk 4 tc.c1m1 >/dev/null
  os flavor show tc.c1m2 >/dev/null 2>&1 || \
    os flavor create --vcpus 1 --ram 2048 --disk 4 tc.c1m2 >/dev/null
  os volume type show tc-luks >/dev/null 2>&1 || \
    os volume type create --property volume_backend_name=ceph tc-luks >/dev/null
  if ! os volume type show --encryption-type tc-luks -f json | grep -q '"provider": "luks"'; then
    os volume type set --encryption-provider luks --encryption-cipher aes-xts-plain64 \
      --encryption-key-size 256 --encryption-control-location front-end tc-luks
  fi
  ;;
*)
  echo "unknown phase $PHASE" >&2; exit 2 ;;
esac
touch "$MARKS/$PHASE.done"
log done
