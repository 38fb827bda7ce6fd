package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/chaosloop/chaosloop/clusters/install"
	"github.com/chaosloop/chaosloop/clusters/local/engines/docstore"
	"github.com/chaosloop/chaosloop/clusters/local/engines/etcd"
	"github.com/chaosloop/chaosloop/clusters/local/engines/galera"
	"github.com/chaosloop/chaosloop/clusters/local/engines/kafka"
	"github.com/chaosloop/chaosloop/clusters/local/engines/redis"
	"github.com/chaosloop/chaosloop/clusters/local/engines/zookeeper"
)

// EngineImage is one engine's image: the engine's own Debian packages (the
// lists the local lab installs, at their pinned versions) and what the
// local lab fetches or builds beyond Debian (Kafka's jars, FerretDB),
// copied to the same absolute paths as in the engine cache on the host, so
// that the engine's command lines run unchanged in a pod.
type EngineImage struct {
	// Name is the engine's short name: etcd, redis, mariadb, zookeeper,
	// kafka, docstore.
	Name     string
	packages []string
	script   string // run in the root filesystem's chroot at the end
	extras   []extra
	// Checks run the engine's binaries in the image (their versions), for
	// a test that the image works.
	Checks [][]string
	// from, when set, is the image's root file system instead of one made
	// of packages.
	from *rootfs
}

// extra is a directory the local lab fetches or builds outside Debian,
// added to an engine image at Dir (its path on the host, too).
type extra struct {
	// what it is, for progress
	what string
	// key is what decides its content: Maven coordinates, a module
	// version (so the image's tag is known before anything is fetched).
	key string
	dir string
	// fetch puts it at dir unless it is there.
	fetch func(ctx context.Context) error
}

// kafkaVersions are the Kafka versions the local lab runs: KRaft's and the
// last with a ZooKeeper mode.
var kafkaVersions = []string{kafka.DefaultVersion, kafka.DefaultZooKeeperVersion}

// Engines are the images of the local lab's engines. cache is the local
// lab's engine cache (Kafka jars, FerretDB; /var/cache/chaosloop).
func (b *Builder) Engines() []EngineImage {
	cache := b.engineCache()
	kafkaEngine := kafka.New(b.Log, filepath.Join(cache, "kafka"))
	ferret := docstore.New(b.Log, cache)
	var jars []extra
	for _, v := range kafkaVersions {
		jars = append(jars, extra{
			what: "Kafka " + v + " jars (Maven Central)", key: kafka.POM(v), dir: kafkaEngine.LibDir(v),
			fetch: func(ctx context.Context) error {
				// Maven resolves the jars, as for the local lab
				if err := install.Apt(ctx, b.Log, "maven"); err != nil {
					return err
				}
				return kafkaEngine.Install(ctx, v)
			},
		})
	}
	return []EngineImage{
		{Name: "etcd", packages: etcd.Packages, Checks: [][]string{{"etcd", "--version"}}},
		// Galera's packages hold the asynchronous engine's (MariaDB's)
		{Name: "mariadb", packages: galera.Packages, Checks: [][]string{{"mariadbd", "--version"}, {"ls", "/usr/lib/galera/libgalera_smm.so"}}},
		{Name: "redis", packages: redis.Packages, Checks: [][]string{{"redis-server", "--version"}, {"redis-sentinel", "--version"}}},
		{Name: "zookeeper", packages: zookeeper.Packages, Checks: [][]string{{
			"java", "-cp", "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar",
			"org.apache.zookeeper.version.VersionInfoMain"}}},
		{Name: "kafka", packages: kafka.JavaPackages, extras: jars, Checks: kafkaChecks(kafkaEngine)},
		{Name: "docstore", packages: docstore.Packages,
			// Debian's default PostgreSQL cluster: the lab's are Patroni's
			script: "if [ -d /etc/postgresql/15/main ]; then pg_dropcluster 15 main; fi\n",
			extras: []extra{{
				what: "FerretDB " + docstore.FerretDBVersion + " (built from its Go module)",
				key:  docstore.FerretDBModule + "@" + docstore.FerretDBVersion, dir: filepath.Dir(ferret.FerretDBPath()),
				fetch: ferret.BuildFerretDB,
			}},
			Checks: [][]string{{ferret.FerretDBPath(), "--version"}, {"/usr/lib/postgresql/15/bin/postgres", "-V"},
				{"patroni", "--version"}, {"etcd", "--version"}}},
		// A stateless service's workers (the handlers) are chaosloop's own
		// binary, put on the node when they start: they need only a C
		// library, which kube-proxy's root file system (built for the node
		// image anyway) has.
		{Name: WorkerImage, from: new(kubeProxyBase()), Checks: [][]string{{"ldd", "--version"}}},
	}
}

// WorkerImage names the image that runs a stateless service's workers.
const WorkerImage = "worker"

// kafkaChecks ask each Kafka version's broker class for its version.
func kafkaChecks(e *kafka.Engine) [][]string {
	var out [][]string
	for _, v := range kafkaVersions {
		out = append(out, []string{"java", "-cp", filepath.Join(e.LibDir(v), "*"), "kafka.Kafka", "--version"})
	}
	return out
}

func (b *Builder) engineCache() string {
	if b.EngineCache != "" {
		return b.EngineCache
	}
	return filepath.Dir(b.Cache)
}

// base is the image of e's Debian packages.
func (e EngineImage) base() debianImage {
	name := "engine-" + e.Name
	if len(e.extras) > 0 {
		name += "-base"
	}
	fs := rootfs{name: "engine-" + e.Name, variant: "minbase", include: e.packages, script: e.script,
		// Java's postinst links its man pages with update-alternatives,
		// which fails where the directory is missing (the images leave
		// /usr/share/man out)
		essentialHooks: []string{`mkdir -p "$1/usr/share/man/man1"`}}
	if e.from != nil {
		fs = *e.from
	}
	return debianImage{name: name, rootfs: fs, changes: []string{"ENV " + imagePath}}
}

// Tag names e's image by its inputs.
func (e EngineImage) Tag() string {
	if len(e.extras) == 0 {
		return e.base().tag()
	}
	parts := []string{e.base().tag(), engineDockerfile}
	for _, x := range e.extras {
		parts = append(parts, x.key, x.dir)
	}
	return Repository + "engine-" + e.Name + ":" + hashOf(parts...)
}

// engineDockerfile adds the extras, each a COPY of one directory.
const engineDockerfile = "FROM %s\n"

// ensureEngine builds e's image unless the daemon has it.
func (b *Builder) ensureEngine(ctx context.Context, e EngineImage) (string, error) {
	if len(e.extras) == 0 {
		return b.ensureDebianImage(ctx, e.base())
	}
	step := "image engine-" + e.Name
	return b.buildOn(ctx, step, e.Tag(), e.base(), func(dir, baseTag string) error {
		dockerfile := fmt.Sprintf(engineDockerfile, baseTag)
		for i, x := range e.extras {
			b.progress(step, "building", x.what)
			if err := x.fetch(install.WithSteps(ctx, func(d string) { b.progress(step, "building", d) })); err != nil {
				return fmt.Errorf("%s: %w", x.what, err)
			}
			ctxDir := fmt.Sprintf("x%d", i)
			if err := linkTree(x.dir, filepath.Join(dir, ctxDir)); err != nil {
				return err
			}
			dockerfile += "COPY " + ctxDir + "/ " + x.dir + "/\n"
		}
		return os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644)
	})
}

// linkTree hard-links (or copies) the regular files of src into dst.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil // lock files
		}
		if err := os.Link(p, to); err != nil {
			return copyFile(p, to)
		}
		return nil
	})
}

// BuildEngine builds the named engine's image unless the daemon has it,
// and returns its tag.
func (b *Builder) BuildEngine(ctx context.Context, name string) (string, error) {
	for _, e := range b.Engines() {
		if e.Name == name {
			return b.ensureEngine(ctx, e)
		}
	}
	return "", fmt.Errorf("no engine image %q", name)
}

// buildEngines builds every engine image missing from the daemon.
func (b *Builder) buildEngines(ctx context.Context) (map[string]string, error) {
	tags := map[string]string{}
	for _, e := range b.Engines() {
		tag, err := b.ensureEngine(ctx, e)
		if err != nil {
			return nil, fmt.Errorf("engine image %s: %w", e.Name, err)
		}
		tags[e.Name] = tag
	}
	return tags, nil
}

// engineEntries are the tags and root filesystems the engine images are
// made of now.
func (b *Builder) engineEntries() []string {
	var out []string
	for _, e := range b.Engines() {
		out = append(out, e.Tag(), b.rootfsPath(e.base().rootfs))
		if len(e.extras) > 0 {
			out = append(out, e.base().tag())
		}
	}
	sort.Strings(out)
	return out
}
