//! The container image's recipe, and the Kubernetes manifests that run it,
//! agree with each other and with the docs. The image itself is built and
//! checked by deploy/container/build.sh (a step of .ci/run, after
//! deploy/release.sh has built the static binaries it copies).

use crate::util::root;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Containerfile's instructions, comments and continuations left out.
fn instructions() -> Vec<String> {
    read("deploy/container/Containerfile")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.starts_with(' '))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn version() -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("version in Cargo.toml")
        .to_owned()
}

#[test]
fn the_image_recipe_pulls_nothing_and_runs_nothing() {
    let from: Vec<String> = instructions()
        .into_iter()
        .filter(|l| l.starts_with("FROM ") || l.starts_with("RUN "))
        .collect();
    assert_eq!(from, ["FROM scratch"]);
}

#[test]
fn the_image_runs_as_65532_with_the_ports_entrypoint_and_command_the_checks_expect() {
    let want = [
        "EXPOSE 53/udp 53/tcp 853/tcp 443/tcp 9153/tcp",
        "USER 65532:65532",
        r#"ENTRYPOINT ["/usr/bin/cutoff"]"#,
        r#"CMD ["serve", "--config", "/etc/cutoff/cutoff.yaml"]"#,
    ];
    let have = instructions();
    for w in want {
        assert!(
            have.iter().any(|l| l == w),
            "{w} missing from the Containerfile"
        );
    }
    let build = read("deploy/container/build.sh");
    for w in [
        "'{{.Config.User}}' 65532:65532\n",
        r#"'["/usr/bin/cutoff"]'"#,
        r#"'["serve","--config","/etc/cutoff/cutoff.yaml"]'"#,
        "'443/tcp 53/tcp 53/udp 853/tcp 9153/tcp '",
    ] {
        assert!(build.contains(w), "build.sh does not check {w}");
    }
    let passwd = read("deploy/container/rootfs/etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("cutoff:x:65532:65532:"))
    );
    let group = read("deploy/container/rootfs/etc/group");
    assert!(group.lines().any(|l| l == "cutoff:x:65532:"));
}

#[test]
fn every_oci_label_build_sh_checks_is_set_by_the_recipe() {
    let recipe = read("deploy/container/Containerfile");
    for label in ["source", "version", "revision", "licenses"] {
        let key = format!("org.opencontainers.image.{label}=");
        assert!(
            recipe.contains(&key),
            "{key} missing from the Containerfile"
        );
        assert!(
            read("deploy/container/build.sh")
                .contains(&format!(r#""org.opencontainers.image.{label}""#)),
            "build.sh does not check the {label} label"
        );
    }
    let licence = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("license = "))
        .expect("license in Cargo.toml")
        .to_owned();
    assert!(recipe.contains(&format!("org.opencontainers.image.licenses={licence}")));
}

/// The Deployment names the image `cutoff`; kustomization.yaml maps it to
/// IMAGE:TAG, by default the tag build.sh gives, whose version is the crate's.
#[test]
fn kubernetes_runs_the_image_that_build_sh_tags() {
    let deployment = read("deploy/kubernetes/deployment.yaml");
    let images: Vec<&str> = deployment
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert_eq!(images, ["cutoff"]);
    let kustomization = read("deploy/kubernetes/kustomization.yaml");
    let block = kustomization
        .split("\nimages:\n")
        .nth(1)
        .expect("an images: block in kustomization.yaml");
    let want = format!(
        "  - name: cutoff\n    newName: localhost/cutoff\n    newTag: \"{}\"\n",
        version()
    );
    assert!(block.starts_with(&want), "images: block:\n{block}");
    assert!(read("deploy/container/build.sh").contains("tag=localhost/cutoff:$version\n"));
    // The image's command, config path and user are the Deployment's.
    assert!(deployment.contains(r#"args: ["serve", "--config", "/etc/cutoff/cutoff.yaml"]"#));
    assert!(deployment.contains("mountPath: /etc/cutoff\n"));
    assert!(deployment.contains("runAsUser: 65532\n"));
}

/// Every `deploy/container/build.sh --option` the docs give is one it takes.
#[test]
fn the_documented_build_sh_options_exist() {
    let script = read("deploy/container/build.sh");
    let mut seen = 0;
    for doc in [
        "docs/kubernetes.md",
        "deploy/container/README.md",
        "deploy/kubernetes/README.md",
        "README.md",
    ] {
        for line in read(doc).lines() {
            let Some((_, args)) = line.split_once("deploy/container/build.sh") else {
                continue;
            };
            for opt in args.split_whitespace().take_while(|w| !w.starts_with('#')) {
                let opt = opt
                    .trim_start_matches('`')
                    .trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
                if opt.starts_with("--") {
                    seen += 1;
                    assert!(
                        script.contains(&format!("        {opt})"))
                            || script.contains(&format!("        {opt} |")),
                        "{doc}: build.sh has no option {opt}: {line}"
                    );
                }
            }
        }
    }
    assert!(seen >= 3, "the docs give build.sh options ({seen} seen)");
}
