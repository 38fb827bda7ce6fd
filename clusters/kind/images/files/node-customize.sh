# Run in the node's root filesystem (as kind's images/base/Dockerfile does).
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
  /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
  /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> /etc/systemd/journald.conf
systemctl enable kubelet.service containerd.service undo-mount-hacks.service chaosloop-images.service \
  chaosloop-apiserver-lb.service
systemctl mask systemd-binfmt.service
mkdir -p /etc/kubernetes/manifests /etc/cni/net.d /kind/images /opt/cni
# kind's units run containerd from /usr/local/bin; Debian's CNI plugins
# live in /usr/lib/cni
ln -sf /usr/bin/containerd /usr/local/bin/containerd
ln -sfn /usr/lib/cni /opt/cni/bin
chmod 755 /kind /kind/bin
