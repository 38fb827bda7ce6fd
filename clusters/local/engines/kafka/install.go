package kafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/chaosloop/chaosloop/clusters/install"
)

// Pinned versions. Kafka publishes no runnable distribution anywhere the lab
// can reach, so the broker is assembled from Maven Central jars.
const (
	// DefaultVersion runs KRaft (4.x has no ZooKeeper mode).
	DefaultVersion = "4.1.1"
	// DefaultZooKeeperVersion is used when Options.ZooKeeper is set: 3.9 is
	// the last line that can still run against ZooKeeper.
	DefaultZooKeeperVersion = "3.9.1"

	dependencyPlugin = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
	// kafka_2.13 4.x depends on slf4j-api 1.7 and log4j-core 2 but ships no
	// bridge between them: without it the broker logs nothing.
	log4jSlf4jImpl = "2.24.3"
	// 3.x logs through slf4j 1.7 → reload4j, as its own distribution does.
	slf4jReload4j = "1.7.36"
	reload4j      = "1.2.25"
)

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// DefaultCacheDir is where jars go when New is given "": under
// $XDG_CACHE_HOME, else /var/cache for root, else ~/.cache.
func DefaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "chaosloop", "kafka")
	}
	if os.Geteuid() == 0 {
		return "/var/cache/chaosloop/kafka"
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "chaosloop", "kafka")
	}
	return filepath.Join(os.TempDir(), "chaosloop-kafka")
}

// JavaPackages are the Java runtime the broker runs on (Install expects
// it installed; the kind backend's image installs it from Debian).
var JavaPackages = []string{"openjdk-17-jre-headless"}

// libDir holds every runtime jar of a version: java -cp '<libDir>/*'.
func (e *Engine) libDir(version string) string {
	return filepath.Join(e.cacheDir, version, "lib")
}

// LibDir is where Install puts version's jars.
func (e *Engine) LibDir(version string) string { return e.libDir(version) }

func (e *Engine) installed(version string) bool {
	_, err := os.Stat(filepath.Join(e.cacheDir, version, "installed"))
	return err == nil
}

func isKRaftOnly(version string) bool { return !strings.HasPrefix(version, "3.") }

// POM is the Maven project whose runtime dependencies are version's
// classpath: with its pinned versions, it decides which jars Install
// fetches (the kind backend keys its Kafka image by it).
func POM(version string) string {
	binding := fmt.Sprintf(`    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>%s</version></dependency>`, log4jSlf4jImpl)
	if !isKRaftOnly(version) {
		binding = fmt.Sprintf(`    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>%s</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>%s</version></dependency>`, slf4jReload4j, reload4j)
	}
	return fmt.Sprintf(`<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>chaosloop</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>%s</version></dependency>
%s
  </dependencies>
</project>
`, version, binding)
}

// Install resolves org.apache.kafka:kafka_2.13:<version> and its runtime
// dependencies into <cacheDir>/<version>/lib with Maven. It does nothing
// when that version is already complete, and is safe to run concurrently
// (a lock file serialises installers of one cache).
func (e *Engine) Install(ctx context.Context, version string) error {
	if version == "" {
		version = DefaultVersion
	}
	if !versionRE.MatchString(version) {
		return fmt.Errorf("kafka: bad version %q (want X.Y.Z)", version)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return errors.New("kafka: java not found in PATH (install a JDK 17, e.g. apt-get install " + strings.Join(JavaPackages, " ") + ")")
	}
	if e.installed(version) {
		e.setVersion(version)
		return nil
	}
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return errors.New("kafka: mvn not found in PATH: Maven is needed to fetch the Kafka jars (apt-get install maven)")
	}
	verDir := filepath.Join(e.cacheDir, version)
	if err := os.MkdirAll(verDir, 0o755); err != nil {
		return fmt.Errorf("kafka: cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(verDir, ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if e.installed(version) { // another installer finished while we waited
		e.setVersion(version)
		return nil
	}

	start := time.Now()
	e.log.Info("kafka install: resolving jars with Maven", "version", version, "dir", verDir)
	install.Step(ctx, "Maven: resolving kafka_2.13 "+version+" and its jars")
	if err := os.WriteFile(filepath.Join(verDir, "pom.xml"), []byte(POM(version)), 0o644); err != nil {
		return err
	}
	tmp := filepath.Join(verDir, "lib.tmp")
	_ = os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, mvn, "-B",
		// A repository of our own: the cache is self-contained and can be
		// wiped as one directory.
		"-Dmaven.repo.local="+filepath.Join(e.cacheDir, "m2"),
		"-f", filepath.Join(verDir, "pom.xml"),
		dependencyPlugin+":copy-dependencies",
		"-DincludeScope=runtime",
		"-DoutputDirectory="+tmp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kafka install: %w", err)
	}
	last := e.streamMaven(ctx, out, version)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("kafka install %s: mvn failed: %v\n%s", version, err, strings.Join(last, "\n"))
	}
	lib := e.libDir(version)
	_ = os.RemoveAll(lib)
	if err := os.Rename(tmp, lib); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(lib, "kafka_2.13-"+version+".jar")); err != nil {
		return fmt.Errorf("kafka install %s: kafka jar missing after Maven ran: %w", version, err)
	}
	jars, bytes := dirSize(lib)
	if err := os.WriteFile(filepath.Join(verDir, "installed"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	e.log.Info("kafka install: done", "version", version, "jars", jars, "bytes", bytes, "took", time.Since(start).Round(time.Millisecond))
	e.setVersion(version)
	return nil
}

// streamMaven turns Maven's download lines into progress logs and keeps the
// last lines for an error message.
func (e *Engine) streamMaven(ctx context.Context, r io.Reader, version string) []string {
	var last []string
	n := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Downloaded from") {
			n++
			e.log.Debug("kafka install", "maven", line)
			if n%25 == 0 {
				e.log.Info("kafka install: downloading", "version", version, "files", n)
				install.Step(ctx, fmt.Sprintf("Maven: %d files downloaded", n))
			}
			continue
		}
		last = append(last, line)
		if len(last) > 20 {
			last = last[1:]
		}
	}
	return last
}

func dirSize(dir string) (files int, bytes int64) {
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		if fi, err := en.Info(); err == nil && fi.Mode().IsRegular() {
			files++
			bytes += fi.Size()
		}
	}
	return files, bytes
}

// lockFile takes an exclusive flock, polling so ctx can end the wait.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Installed reports whether version's jars are in the cache.
func (e *Engine) Installed(version string) bool { return e.installed(version) }
