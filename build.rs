//! Compiles `proto/` with protox (no system protoc) into:
//! - the prost messages and tonic services,
//! - one pbjson serde build per API package, configured from the package's
//!   `(iamd.json)` file option,
//! - the encoded descriptor set (extension options kept) for reflection and the transcoder,
//! - `method_codecs.rs`: for every method, the typed JSON <-> protobuf functions the
//!   transcoder calls. Routes themselves are read from the descriptor set at start-up.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_reflect::DescriptorPool;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=tests/proto");
    let out = PathBuf::from(env::var("OUT_DIR")?);

    // The product: what the server serves and reflects.
    let product_files = proto_files("proto", "proto/iamd")?;
    let product = compile(&["proto"], &product_files)?;
    fs::write(out.join("iamd_descriptor.bin"), product.encode_file_descriptor_set())?;

    // The product plus test-only services; code is generated from this superset and the
    // test packages are compiled in only under cfg(test).
    let mut all_files = product_files.clone();
    all_files.extend(proto_files("tests/proto", "tests/proto/iamd")?);
    let all = compile(&["proto", "tests/proto"], &all_files)?;
    // The encoded bytes keep extension options (google.api.http, iamd.method); the prost
    // types of `file_descriptor_set()` drop them, which is fine for codegen only.
    let all_bytes = all.encode_file_descriptor_set();
    fs::write(out.join("test_descriptor.bin"), &all_bytes)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_well_known_types(true)
        // prost's codec with smaller first buffers (src/codec.rs says why).
        .codec_path("crate::codec::Codec")
        .extern_path(".google.protobuf", "::pbjson_types")
        // pbjson-types prints timestamps as `+00:00` (the proto3 JSON mapping and the seed
        // pages want `Z`) and field masks as objects (the mapping: one string), so those
        // two are ours.
        .extern_path(".google.protobuf.Timestamp", "crate::wkt::Timestamp")
        .extern_path(".google.protobuf.FieldMask", "crate::wkt::FieldMask")
        .compile_fds(all.file_descriptor_set())?;

    let pool = DescriptorPool::decode(all_bytes.as_slice())?;
    for (package, conventions) in json_conventions(&pool)? {
        let mut builder = pbjson_build::Builder::new();
        builder.register_descriptors(&all_bytes)?;
        builder.extern_path(".google.protobuf.Timestamp", "crate::wkt::Timestamp");
        builder.extern_path(".google.protobuf.FieldMask", "crate::wkt::FieldMask");
        if conventions.emit_zero_values {
            builder.emit_fields();
        }
        if conventions.ignore_unknown_fields {
            builder.ignore_unknown_fields();
        }
        builder.build(&[format!(".{package}")])?;
        omit_empty_fields(&pool, &package, &out.join(format!("{package}.serde.rs")))?;
    }

    let product_pool = DescriptorPool::decode(product.encode_file_descriptor_set().as_slice())?;
    fs::write(out.join("method_codecs.rs"), method_codecs(&pool, &product_pool))?;
    Ok(())
}

/// `.proto` files under `dir`, relative to the include root `root`.
fn proto_files(root: &str, dir: &str) -> Result<Vec<String>, Box<dyn Error>> {
    let mut files = Vec::new();
    collect_protos(Path::new(dir), &mut files)?;
    files.sort();
    files
        .iter()
        .map(|f| {
            f.strip_prefix(root).map(|p| p.to_string_lossy().trim_start_matches('/').to_owned()).map_err(Into::into)
        })
        .collect()
}

fn compile(includes: &[&str], files: &[String]) -> Result<protox::Compiler, Box<dyn Error>> {
    let mut compiler = protox::Compiler::new(includes)?;
    compiler.include_imports(true).include_source_info(true).open_files(files)?;
    Ok(compiler)
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Conventions {
    emit_zero_values: bool,
    ignore_unknown_fields: bool,
}

/// Reads `(iamd.json)` of every file that defines messages in an `iamd.*` package, and
/// insists that all files of one package agree.
fn json_conventions(pool: &DescriptorPool) -> Result<BTreeMap<String, Conventions>, Box<dyn Error>> {
    let ext = pool.get_extension_by_name("iamd.json").ok_or("iamd.json file option is not defined")?;
    let mut by_package: BTreeMap<String, Conventions> = BTreeMap::new();
    for file in pool.files() {
        let package = file.package_name().to_owned();
        if !package.starts_with("iamd.") {
            continue;
        }
        let options = file.options();
        if !options.has_extension(&ext) {
            return Err(format!("{}: every iamd file needs option (iamd.json)", file.name()).into());
        }
        let value = options.get_extension(&ext);
        let message = value.as_message().ok_or("iamd.json is not a message")?;
        let flag = |name: &str| message.get_field_by_name(name).and_then(|v| v.as_bool()).unwrap_or(false);
        let conventions = Conventions {
            emit_zero_values: flag("emit_zero_values"),
            ignore_unknown_fields: flag("ignore_unknown_fields"),
        };
        if let Some(previous) = by_package.insert(package.clone(), conventions)
            && previous != conventions
        {
            return Err(format!("{}: (iamd.json) differs within package {package}", file.name()).into());
        }
    }
    Ok(by_package)
}

/// pbjson emits every field of an `emit_zero_values` package; a field marked
/// `(iamd.omit_empty)` is left out while empty. Its generated `if true {` becomes a test of
/// emptiness, and a generator that writes the code otherwise fails the build here.
fn omit_empty_fields(pool: &DescriptorPool, package: &str, serde_file: &Path) -> Result<(), Box<dyn Error>> {
    let ext = pool.get_extension_by_name("iamd.omit_empty").ok_or("iamd.omit_empty field option is not defined")?;
    let mut code = fs::read_to_string(serde_file)?;
    let mut changed = false;
    for message in pool.all_messages().filter(|m| m.package_name() == package) {
        for field in message.fields() {
            let options = field.options();
            if !options.has_extension(&ext) || !options.get_extension(&ext).as_bool().unwrap_or(false) {
                continue;
            }
            if !(field.is_list() || field.is_map()) {
                return Err(format!("{}: (iamd.omit_empty) is for repeated and map fields", field.full_name()).into());
            }
            let local = local_type(message.full_name(), package);
            let rust_field = field.name().to_snake_case();
            let impl_start = format!("impl serde::Serialize for {local} {{");
            let emitted = format!(
                "        if true {{\n            struct_ser.serialize_field(\"{}\", &self.{rust_field})?;",
                field.json_name()
            );
            let start = code.find(&impl_start).ok_or_else(|| format!("pbjson wrote no Serialize for {local}"))?;
            let at = code[start..]
                .find(&emitted)
                .map(|i| start + i)
                .ok_or_else(|| format!("pbjson's code for {} is not the expected shape", field.full_name()))?;
            let omitted = emitted.replacen("if true", &format!("if !self.{rust_field}.is_empty()"), 1);
            code.replace_range(at..at + emitted.len(), &omitted);
            changed = true;
        }
    }
    if changed {
        fs::write(serde_file, code)?;
    }
    Ok(())
}

/// The Rust path prost gives a message: `.iamd.admin.v1.GetOrgIAMPolicyRequest` ->
/// `crate::pb::iamd::admin::v1::GetOrgIamPolicyRequest`.
fn rust_type(full_name: &str, package: &str) -> String {
    let mut path = String::from("crate::pb");
    for part in package.split('.') {
        path.push_str("::");
        path.push_str(&part.to_snake_case());
    }
    path.push_str("::");
    path.push_str(&local_type(full_name, package));
    path
}

/// The same path within the package's module: `Statement`, `outer::Inner`.
fn local_type(full_name: &str, package: &str) -> String {
    let local = full_name.strip_prefix(package).unwrap_or(full_name).trim_start_matches('.');
    let mut parts: Vec<String> = local.split('.').map(str::to_owned).collect();
    let name = parts.pop().unwrap_or_default();
    parts.iter_mut().for_each(|outer| *outer = outer.to_snake_case());
    parts.push(name.to_upper_camel_case());
    parts.join("::")
}

fn method_codecs(pool: &DescriptorPool, product: &DescriptorPool) -> String {
    let mut code = String::from(
        "/// Generated by build.rs: typed JSON codecs per gRPC method path.\n\
         pub(crate) fn method_codec(path: &str) -> Option<crate::transcode::codec::MethodCodec> {\n    \
         use crate::transcode::codec::MethodCodec;\n    match path {\n",
    );
    for service in pool.services() {
        if !service.package_name().starts_with("iamd.") {
            continue;
        }
        for method in service.methods() {
            let input = method.input();
            let output = method.output();
            if product.get_service_by_name(service.full_name()).is_none() {
                code.push_str("        #[cfg(test)]\n");
            }
            let _ = writeln!(
                code,
                "        \"/{}/{}\" => Some(MethodCodec::new::<{}, {}>()),",
                service.full_name(),
                method.name(),
                rust_type(input.full_name(), input.package_name()),
                rust_type(output.full_name(), output.package_name()),
            );
        }
    }
    code.push_str("        _ => None,\n    }\n}\n");
    code
}
