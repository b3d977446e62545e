// safetensors: our writer's exact bytes, round trips, hand-built files with
// every readable dtype, files written by Python's `safetensors`
// (Golden/python_written*.safetensors), every error case, and strict
// ParameterStore save/load.
import Foundation
import XCTest
@testable import NN
import Tensor

/// 8-byte little-endian header length, header, data.
func safetensorsBytes(_ header: String, _ data: [UInt8] = [], headerLength: UInt64? = nil) -> Data {
  var out = Data()
  var n = (headerLength ?? UInt64(header.utf8.count)).littleEndian
  out.append(Data(bytes: &n, count: 8))
  out.append(Data(header.utf8))
  out.append(contentsOf: data)
  return out
}

func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
  values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

final class SafeTensorsTests: XCTestCase {
  func testWriterProducesTheSpecifiedLayout() throws {
    let a = Tensor(shape: [2], values: [1, -2])
    let b = Tensor(shape: [1, 1], values: [0.5])
    let bytes = SafeTensors.encode([("a", a), ("b.c", b)], metadata: ["k": "v\"q"])
    let n = bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    XCTAssertEqual(n % 8, 0, "header padded so the data is 8-byte aligned")
    let header = String(decoding: bytes[8..<(8 + Int(n))], as: UTF8.self)
    XCTAssertEqual(header.trimmingCharacters(in: .whitespaces),
                   #"{"__metadata__":{"k":"v\"q"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b.c":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}}"#)
    XCTAssertEqual(bytes.count, 8 + Int(n) + 12)
    let data = Array(bytes[(8 + Int(n))...])
    XCTAssertEqual(data, le([Float(1).bitPattern, Float(-2).bitPattern, Float(0.5).bitPattern]))
  }

  func testFileRoundTrip() throws {
    let dir = try temporaryDirectory(self)
    let url = dir.appendingPathComponent("x.safetensors")
    let tensors: [(name: String, tensor: Tensor)] = [
      ("layers.0.weight", Tensor(shape: [3, 5], values: randomValues(15, seed: 1))),
      ("scalar", Tensor(scalar: 4.5)),
      ("empty", Tensor(shape: [0, 3], values: [])),
      ("odd \"name\"\n", Tensor(shape: [7], values: randomValues(7, seed: 2))),
    ]
    try SafeTensors.write(tensors, metadata: ["format": "pt", "step": "12"], to: url)
    // Overwriting an existing file works (atomic rename).
    try SafeTensors.write(tensors, metadata: ["format": "pt", "step": "12"], to: url)
    let f = try SafeTensorsFile(contentsOf: url)
    XCTAssertEqual(f.metadata, ["format": "pt", "step": "12"])
    XCTAssertEqual(f.keys, tensors.map(\.name), "keys in file order")
    for (name, t) in tensors {
      let r = try f.tensor(name)
      XCTAssertEqual(r.shape, t.shape, name)
      XCTAssertEqual(r.toArray(), t.toArray(), name)
      XCTAssertEqual(f.tensors[name]!.dtype, .F32)
    }
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["x.safetensors"], "no temporary left behind")
    XCTAssertEqual(SafeTensors.encode(tensors, metadata: ["format": "pt", "step": "12"]), try Data(contentsOf: url))
  }

  func testHandBuiltFileWithEveryDType() throws {
    // Unpadded header, data in an order different from the JSON order.
    var data: [UInt8] = []
    func add(_ bytes: [UInt8]) -> String { let s = data.count; data += bytes; return "[\(s),\(data.count)]" }
    let f32 = add(le([Float(1.25).bitPattern, Float(-3).bitPattern]))
    let f16 = add(le([UInt16(0x3C00), 0xC000, 0x7BFF, 0x0001, 0x0400, 0x7C00, 0x8000]))
    let bf16 = add(le([UInt16(0x3F80), 0xC040]))
    let f64 = add(le([Double(0.1).bitPattern]))
    let i64 = add(le([Int64(-5), 1 << 40]))
    let i32 = add(le([Int32(-7), 9]))
    let i16 = add(le([Int16(-300)]))
    let i8 = add([UInt8(bitPattern: -4)])
    let u8 = add([200, 0])
    let b = add([1, 0, 1])
    let u16 = add(le([UInt16(65535)]))
    let u32 = add(le([UInt32(70000)]))
    let u64 = add(le([UInt64(123)]))
    let header = """
    {"u8":{"dtype":"U8","shape":[2],"data_offsets":\(u8)},"f32":{"dtype":"F32","shape":[2,1],"data_offsets":\(f32)},
     "f16":{"dtype":"F16","shape":[7],"data_offsets":\(f16)},"bf16":{"dtype":"BF16","shape":[2],"data_offsets":\(bf16)},
     "f64":{"dtype":"F64","shape":[],"data_offsets":\(f64)},"i64":{"dtype":"I64","shape":[2],"data_offsets":\(i64)},
     "i32":{"dtype":"I32","shape":[2],"data_offsets":\(i32)},"i16":{"dtype":"I16","shape":[1],"data_offsets":\(i16)},
     "i8":{"dtype":"I8","shape":[1],"data_offsets":\(i8)},"bool":{"dtype":"BOOL","shape":[3],"data_offsets":\(b)},
     "u16":{"dtype":"U16","shape":[1],"data_offsets":\(u16)},"u32":{"dtype":"U32","shape":[1],"data_offsets":\(u32)},
     "u64":{"dtype":"U64","shape":[1],"data_offsets":\(u64)},"__metadata__":{"a":"b"}}
    """
    let f = try SafeTensorsFile(data: safetensorsBytes(header, data), path: "hand.safetensors")
    XCTAssertEqual(f.metadata, ["a": "b"])
    XCTAssertEqual(f.keys.first, "f32")
    XCTAssertEqual(try f.tensor("f32").shape, [2, 1])
    XCTAssertEqual(try f.floats("f32"), [1.25, -3])
    let half = try f.floats("f16")
    XCTAssertEqual(Array(half[0..<5]), [1, -2, 65504, Float(sign: .plus, exponent: -24, significand: 1), Float(sign: .plus, exponent: -14, significand: 1)])
    XCTAssertEqual(half[5], .infinity)
    XCTAssertEqual(half[6].bitPattern, (-Float(0)).bitPattern)
    XCTAssertEqual(try f.floats("bf16"), [1, -3])
    XCTAssertEqual(try f.tensor("f64").shape, [])
    XCTAssertEqual(try f.floats("f64"), [Float(0.1)])
    XCTAssertEqual(try f.floats("i64"), [-5, Float(1 << 40)])
    XCTAssertEqual(try f.floats("i32"), [-7, 9])
    XCTAssertEqual(try f.floats("i16"), [-300])
    XCTAssertEqual(try f.floats("i8"), [-4])
    XCTAssertEqual(try f.floats("u8"), [200, 0])
    XCTAssertEqual(try f.floats("bool"), [1, 0, 1])
    XCTAssertEqual(try f.floats("u16"), [65535])
    XCTAssertEqual(try f.floats("u32"), [70000])
    XCTAssertEqual(try f.floats("u64"), [123])
  }

  func testHalfConversionAgreesWithFloat16ForEveryBitPattern() {
    #if arch(x86_64) || arch(arm64)
    for bits in 0...UInt16.max {
      let ours = halfToFloat(bits), ref = Float(Float16(bitPattern: bits))
      if ref.isNaN { XCTAssertTrue(ours.isNaN, "\(bits)") } else if ours.bitPattern != ref.bitPattern {
        XCTFail("F16 \(String(bits, radix: 16)): \(ours) vs \(ref)"); return
      }
    }
    #endif
  }

  func testReadsFilesWrittenByPythonSafetensors() throws {
    let f = try SafeTensorsFile(contentsOf: goldenURL("python_written.safetensors"))
    XCTAssertEqual(f.metadata, ["format": "np", "note": "nn_goldens"])
    XCTAssertEqual(Set(f.keys), ["f32", "f16", "i64", "i32", "u8", "scalar"])
    XCTAssertEqual(try f.tensor("f32").shape, [2, 3])
    XCTAssertEqual(try f.floats("f32"), (0..<6).map { Float($0) / 4 - 0.5 })
    XCTAssertEqual(try f.floats("f16"), [1.5, -2.25, 65504, Float(sign: .plus, exponent: -14, significand: 1),
                                         Float(sign: .plus, exponent: -24, significand: 1), 0])
    XCTAssertEqual(try f.tensor("i64").shape, [2, 2])
    XCTAssertEqual(try f.floats("i64"), [-3, 7, Float(1 << 40), 0])
    XCTAssertEqual(try f.floats("i32"), [-100000, 5, 0])
    XCTAssertEqual(try f.floats("u8"), [0, 1, 255])
    XCTAssertEqual(try f.tensor("scalar").shape, [])
    XCTAssertEqual(try f.floats("scalar"), [3.25])
    let g = try SafeTensorsFile(contentsOf: goldenURL("python_written_bf16.safetensors"))
    XCTAssertEqual(g.tensors["bf16"]?.dtype, .BF16)
    XCTAssertEqual(try g.floats("bf16"), [1, -0.5, 3.140625, Float(bitPattern: 0x714A_0000)])  // 1e30 = 0x7149F2CA rounds to nearest bf16
  }

  // MARK: errors

  func assertError(_ data: Data, _ expected: SafeTensorsError, mentions: [String] = [],
                   file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try SafeTensorsFile(data: data, path: "bad.safetensors"), file: file, line: line) { error in
      XCTAssertEqual(error as? SafeTensorsError, expected, file: file, line: line)
      let text = "\(error)"
      for word in ["bad.safetensors"] + mentions { XCTAssertTrue(text.contains(word), "'\(text)' lacks '\(word)'", file: file, line: line) }
    }
  }

  func badHeader(_ data: Data) -> SafeTensorsError? {
    do { _ = try SafeTensorsFile(data: data, path: "bad.safetensors"); return nil } catch { return error as? SafeTensorsError }
  }

  func testTruncatedFiles() {
    assertError(Data([1, 2, 3]), .truncated(file: "bad.safetensors", needed: 8, size: 3), mentions: ["truncated"])
    let full = safetensorsBytes(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, [0, 0, 0, 0])
    // Cut inside the header.
    assertError(full.prefix(20), .truncated(file: "bad.safetensors", needed: full.count - 4, size: 20))
    // Cut inside the data: the tensor's offsets now run past the end.
    assertError(full.prefix(full.count - 1), .offsetsOutOfRange(file: "bad.safetensors", key: "a", begin: 0, end: 4, dataSize: 3),
                mentions: ["'a'"])
  }

  func testBadHeaders() {
    func isBadHeader(_ header: String, _ reason: String, line: UInt = #line) {
      guard case .badHeader(let f, let r)? = badHeader(safetensorsBytes(header, [0, 0, 0, 0])) else {
        XCTFail("expected badHeader for \(header)", line: line); return
      }
      XCTAssertEqual(f, "bad.safetensors", line: line)
      XCTAssertTrue(r.contains(reason), "'\(r)' lacks '\(reason)'", line: line)
    }
    isBadHeader("not json", "'{'")
    isBadHeader("{\"a\": ", "not valid JSON")
    isBadHeader("{\"a\":[1,2]}", "tensor 'a': entry is not an object")
    isBadHeader(#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, "tensor 'a': missing or non-string \"dtype\"")
    isBadHeader(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, "tensor 'a': missing or invalid \"shape\"")
    isBadHeader(#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, "tensor 'a': missing or invalid \"shape\"")
    isBadHeader(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, "tensor 'a': missing or invalid \"data_offsets\"")
    isBadHeader(#"{"__metadata__":{"k":1}}"#, "__metadata__ value of 'k'")
    isBadHeader(#"{"__metadata__":[]}"#, "__metadata__ is not an object")
    // A header length that cannot be real (e.g. a file of some other format).
    guard case .badHeader(_, let r)? = badHeader(safetensorsBytes("{}", headerLength: 1 << 40)) else { return XCTFail("huge header") }
    XCTAssertTrue(r.contains("exceeds"))
  }

  func testUnknownDType() {
    assertError(safetensorsBytes(#"{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, [0, 0, 0, 0]),
                .unknownDType(file: "bad.safetensors", key: "w", dtype: "F8_E4M3"), mentions: ["'w'", "F8_E4M3", "BF16"])
  }

  func testOffsetsOutOfRangeAndSizeMismatch() {
    assertError(safetensorsBytes(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, [UInt8](repeating: 0, count: 8)),
                .offsetsOutOfRange(file: "bad.safetensors", key: "w", begin: 4, end: 12, dataSize: 8), mentions: ["'w'", "[4, 12]"])
    assertError(safetensorsBytes(#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, [UInt8](repeating: 0, count: 8)),
                .offsetsOutOfRange(file: "bad.safetensors", key: "w", begin: 8, end: 4, dataSize: 8))
    assertError(safetensorsBytes(#"{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)),
                .sizeMismatch(file: "bad.safetensors", key: "w", dtype: "F16", shape: [3], bytes: 8), mentions: ["needs 6 bytes", "span 8"])
  }

  func testMissingKeyAndMissingFile() throws {
    let f = try SafeTensorsFile(data: safetensorsBytes("{}"), path: "empty.safetensors")
    XCTAssertTrue(f.keys.isEmpty)
    XCTAssertThrowsError(try f.tensor("nope")) {
      XCTAssertEqual($0 as? SafeTensorsError, .missingKey(file: "empty.safetensors", key: "nope"))
    }
    let url = URL(fileURLWithPath: "/nonexistent/dir/model.safetensors")
    XCTAssertThrowsError(try SafeTensorsFile(contentsOf: url)) {
      guard case .cannotRead(let file, _)? = $0 as? SafeTensorsError else { return XCTFail("\($0)") }
      XCTAssertEqual(file, url.path)
    }
    XCTAssertThrowsError(try SafeTensors.write([("a", Tensor(scalar: 1))], to: url)) {
      guard case .cannotWrite(let file, _)? = $0 as? SafeTensorsError else { return XCTFail("\($0)") }
      XCTAssertEqual(file, url.path)
    }
  }

  // MARK: ParameterStore

  func makeStore(seed: UInt64, headShape: [Int] = [3, 4]) -> ParameterStore {
    let s = ParameterStore()
    s.parameter("backbone.patch_embed.proj.weight", Tensor(shape: [4, 3, 2, 2], values: randomValues(48, seed: seed)))
    s.parameter("backbone.norm.bias", Tensor(shape: [4], values: randomValues(4, seed: seed + 1)), decay: false)
    s.parameter("head.weight", Tensor(shape: headShape, values: randomValues(headShape.reduce(1, *), seed: seed + 2)))
    s.buffer("head.bn.running_mean", Tensor(shape: [3], values: randomValues(3, seed: seed + 3)))
    s.finalize()
    return s
  }

  func testStoreSaveLoadRoundTrip() throws {
    let url = try temporaryDirectory(self).appendingPathComponent("ckpt.safetensors")
    let a = makeStore(seed: 1)
    try a.save(to: url, metadata: ["iter": "3"])
    let b = makeStore(seed: 50)
    XCTAssertNotEqual(b.values!.toArray(), a.values!.toArray())
    try b.load(from: url)
    XCTAssertEqual(b.values!.toArray(), a.values!.toArray(), "parameters land in the arena")
    XCTAssertEqual(b.buffers[0].tensor.toArray(), a.buffers[0].tensor.toArray(), "buffers are restored")
    XCTAssertEqual(b.entries[2].variable.value.toArray(), a.entries[2].variable.value.toArray())
    XCTAssertEqual(try SafeTensorsFile(contentsOf: url).metadata["iter"], "3")
  }

  func testStrictLoadListsEveryProblemAndChangesNothing() throws {
    let url = try temporaryDirectory(self).appendingPathComponent("other.safetensors")
    // The file: head.weight of another shape, no running_mean, an extra key.
    let other = makeStore(seed: 1, headShape: [5, 4])
    var tensors = other.namedTensors.filter { $0.name != "head.bn.running_mean" }
    tensors.append(("head.extra", Tensor(scalar: 1)))
    try SafeTensors.write(tensors, to: url)
    let s = makeStore(seed: 9)
    let before = s.values!.toArray()
    XCTAssertThrowsError(try s.load(from: url)) { error in
      XCTAssertEqual(error as? StateDictError,
                     .mismatch(file: url.path, missing: ["head.bn.running_mean"], unexpected: ["head.extra"],
                               shapeMismatches: [.init(key: "head.weight", expected: [3, 4], found: [5, 4])]))
      let text = "\(error)"
      for word in [url.path, "missing keys (1): head.bn.running_mean", "unexpected keys (1): head.extra",
                   "head.weight: expected [3, 4], found [5, 4]"] {
        XCTAssertTrue(text.contains(word), "'\(text)' lacks '\(word)'")
      }
    }
    XCTAssertEqual(s.values!.toArray(), before, "a failed strict load changes nothing")
  }

  func testStoreLoadsOtherDTypesByConversion() throws {
    // A half-precision checkpoint of the same model loads (values rounded to F16).
    let s = makeStore(seed: 4)
    var data: [UInt8] = [], parts: [String] = []
    for (name, t) in s.namedTensors {
      let start = data.count
      data += le(t.toArray().map { Float16($0).bitPattern })
      parts.append("\"\(name)\":{\"dtype\":\"F16\",\"shape\":\(t.shape),\"data_offsets\":[\(start),\(data.count)]}")
    }
    let f = try SafeTensorsFile(data: safetensorsBytes("{" + parts.joined(separator: ",") + "}", data), path: "half")
    let t = makeStore(seed: 5)
    try t.load(from: f)
    XCTAssertEqual(t.values!.toArray(), s.values!.toArray().map { Float(Float16($0)) })
  }
}
