// The public dataset layouts `pack` reads, each turned into a `DatasetSpec`:
// the sorted list of (image, label) file pairs plus classes, palette and the
// label mapping that the manifest records and the reader applies.
import Foundation

/// One image file and its label file; `name` is the image path relative to the root.
public struct PackInput: Equatable, Sendable {
  public var name: String
  public var imagePath: String
  public var labelPath: String
  public init(name: String, imagePath: String, labelPath: String) {
    self.name = name; self.imagePath = imagePath; self.labelPath = labelPath
  }
}

public struct DatasetSpec: Sendable {
  public var dataset: String
  public var split: String
  public var numClasses: Int
  public var classNames: [String]
  public var palette: [[Int]]
  public var labelMap: LabelMap
  /// Sorted by name, so the pack is deterministic.
  public var inputs: [PackInput]
  /// Files found without a partner (an image without a label): each is a bad input.
  public var unpaired: [SkippedInput]
}

public enum DatasetLayout {
  public static let formats = ["ade20k", "cityscapes", "pascal-context", "folder"]

  /// ADEChallengeData2016: images/{training,validation}/*.jpg, annotations/…/*.png; 150 classes, 0 -> ignore.
  public static func ade20k(root: String, split: String) throws -> DatasetSpec {
    let dir = try splitName(split, train: "training", val: "validation")
    let images = try listFiles(join(root, "images", dir), suffix: ".jpg")
    var inputs: [PackInput] = [], unpaired: [SkippedInput] = []
    for img in images {
      let stem = String(img.dropLast(4))
      let lab = join(root, "annotations", dir, stem + ".png")
      let name = join("images", dir, img)
      if FileManager.default.fileExists(atPath: lab) {
        inputs.append(PackInput(name: name, imagePath: join(root, name), labelPath: lab))
      } else { unpaired.append(SkippedInput(source: name, reason: "no label file \(lab)")) }
    }
    return try spec("ade20k", split, 150, ClassNames.ade20k, .reduceZero(numClasses: 150), inputs, unpaired,
                    looked: join(root, "images", dir))
  }

  /// Cityscapes: leftImg8bit/{train,val}/CITY/*_leftImg8bit.png with gtFine/…/*_gtFine_labelTrainIds.png; 19 classes.
  public static func cityscapes(root: String, split: String) throws -> DatasetSpec {
    let dir = try splitName(split, train: "train", val: "val")
    let base = join(root, "leftImg8bit", dir)
    var inputs: [PackInput] = [], unpaired: [SkippedInput] = []
    for city in try listDirectories(base) {
      for img in try listFiles(join(base, city), suffix: "_leftImg8bit.png") {
        let stem = String(img.dropLast("_leftImg8bit.png".count))
        let lab = join(root, "gtFine", dir, city, stem + "_gtFine_labelTrainIds.png")
        let name = join("leftImg8bit", dir, city, img)
        if FileManager.default.fileExists(atPath: lab) {
          inputs.append(PackInput(name: name, imagePath: join(root, name), labelPath: lab))
        } else {
          unpaired.append(SkippedInput(source: name, reason: "no label file \(lab) (run cityscapesscripts' createTrainIdLabelImgs first)"))
        }
      }
    }
    return try spec("cityscapes", split, 19, ClassNames.cityscapes, .identity(numClasses: 19), inputs, unpaired,
                    looked: base, palette: ClassNames.cityscapesPalette)
  }

  /// PASCAL-Context in mmseg's layout: JPEGImages/*.jpg, SegmentationClassContext/*.png,
  /// ImageSets/SegmentationContext/{train,val}.txt; 59 classes, 0 -> ignore.
  public static func pascalContext(root: String, split: String) throws -> DatasetSpec {
    _ = try splitName(split, train: "train", val: "val")
    let listPath = join(root, "ImageSets", "SegmentationContext", split + ".txt")
    guard let text = try? String(contentsOfFile: listPath, encoding: .utf8) else {
      throw DataError.io(path: listPath, "cannot read the split list (expected mmseg's PASCAL-Context layout)")
    }
    let ids = Set(text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
    var inputs: [PackInput] = [], unpaired: [SkippedInput] = []
    for id in ids.sorted() {
      let name = join("JPEGImages", id + ".jpg")
      let lab = join(root, "SegmentationClassContext", id + ".png")
      if !FileManager.default.fileExists(atPath: join(root, name)) {
        unpaired.append(SkippedInput(source: name, reason: "listed in \(listPath) but the image does not exist"))
      } else if !FileManager.default.fileExists(atPath: lab) {
        unpaired.append(SkippedInput(source: name, reason: "no label file \(lab)"))
      } else {
        inputs.append(PackInput(name: name, imagePath: join(root, name), labelPath: lab))
      }
    }
    return try spec("pascal-context", split, 59, ClassNames.pascalContext59, .reduceZero(numClasses: 59), inputs, unpaired,
                    looked: listPath)
  }

  /// Any dataset: images (.jpg/.jpeg/.png) and label PNGs paired by file stem.
  public static func folder(images: String, labels: String, split: String, numClasses: Int,
                            ignoreValue: Int? = nil, classNames: [String]? = nil,
                            dataset: String = "folder") throws -> DatasetSpec {
    guard (1...255).contains(numClasses) else {
      throw DataError.invalidArgument("--num-classes must be in 1...255 (255 is the ignore value), got \(numClasses)")
    }
    if let v = ignoreValue, !(numClasses..<256).contains(v) {
      throw DataError.invalidArgument("--ignore-value \(v) must be in \(numClasses)...255 (values below are classes)")
    }
    if let n = classNames, n.count != numClasses {
      throw DataError.invalidArgument("--class-names lists \(n.count) names but --num-classes is \(numClasses)")
    }
    let imgs = try listFiles(images, suffixes: [".jpg", ".jpeg", ".png"])
    var byStem: [String: String] = [:]
    for l in try listFiles(labels, suffix: ".png") { byStem[String(l.dropLast(4))] = l }
    var inputs: [PackInput] = [], unpaired: [SkippedInput] = [], seen = Set<String>()
    for img in imgs {
      let stem = (img as NSString).deletingPathExtension
      if !seen.insert(stem).inserted {
        unpaired.append(SkippedInput(source: img, reason: "another image has the same stem \"\(stem)\"; pairing is by stem"))
      } else if let l = byStem[stem] {
        inputs.append(PackInput(name: img, imagePath: join(images, img), labelPath: join(labels, l)))
      } else { unpaired.append(SkippedInput(source: img, reason: "no label \(join(labels, stem + ".png"))")) }
    }
    let names = classNames ?? (0..<numClasses).map { "class\($0)" }
    return try spec(dataset, split, numClasses, names, .identity(numClasses: numClasses, ignoreValue: ignoreValue),
                    inputs, unpaired, looked: images)
  }

  /// Reads a class-names file: one name per line, blank lines ignored.
  public static func readClassNames(_ path: String) throws -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw DataError.io(path: path, "cannot read the class names file")
    }
    return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
  }

  // MARK: helpers

  static func spec(_ dataset: String, _ split: String, _ n: Int, _ names: [String], _ map: LabelMap,
                   _ inputs: [PackInput], _ unpaired: [SkippedInput], looked: String,
                   palette: [[Int]]? = nil) throws -> DatasetSpec {
    precondition(names.count == n, "\(dataset): \(names.count) class names for \(n) classes")
    guard !inputs.isEmpty || !unpaired.isEmpty else {
      throw DataError.emptySplit("\(dataset) split \"\(split)\": no images found under \(looked)")
    }
    return DatasetSpec(dataset: dataset, split: split, numClasses: n, classNames: names,
                       palette: palette ?? ClassNames.defaultPalette(n), labelMap: map,
                       inputs: inputs.sorted { $0.name < $1.name }, unpaired: unpaired.sorted { $0.source < $1.source })
  }

  static func splitName(_ split: String, train: String, val: String) throws -> String {
    switch split {
    case "train": return train
    case "val": return val
    default: throw DataError.invalidArgument("--split must be train or val, got \"\(split)\"")
    }
  }

  static func join(_ parts: String...) -> String { parts.joined(separator: "/") }

  static func listFiles(_ dir: String, suffix: String) throws -> [String] { try listFiles(dir, suffixes: [suffix]) }

  static func listFiles(_ dir: String, suffixes: [String]) throws -> [String] {
    guard let all = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
      throw DataError.io(path: dir, "cannot list the directory (does it exist?)")
    }
    return all.filter { f in suffixes.contains { f.lowercased().hasSuffix($0.lowercased()) } && !f.hasPrefix(".") }.sorted()
  }

  static func listDirectories(_ dir: String) throws -> [String] {
    guard let all = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
      throw DataError.io(path: dir, "cannot list the directory (does it exist?)")
    }
    return all.filter { var d: ObjCBool = false
      return FileManager.default.fileExists(atPath: join(dir, $0), isDirectory: &d) && d.boolValue }.sorted()
  }
}

public enum ClassNames {
  public static let ade20k: [String] = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
  ]

  public static let cityscapes: [String] = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
  ]

  public static let cityscapesPalette: [[Int]] = [
    [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153], [153, 153, 153],
    [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
    [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230], [119, 11, 32],
  ]

  public static let pascalContext59: [String] = [
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle", "building",
    "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain", "dog",
    "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike",
    "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall",
    "water", "window", "wood",
  ]

  /// The PASCAL VOC bit-interleaved palette (colour of class i from the bits of i+1,
  /// so class 0 is not black, which overlays use for "no prediction").
  public static func defaultPalette(_ n: Int) -> [[Int]] {
    (0..<n).map { c in
      var r = 0, g = 0, b = 0, v = c + 1
      for k in 0..<8 {
        r |= ((v >> 0) & 1) << (7 - k); g |= ((v >> 1) & 1) << (7 - k); b |= ((v >> 2) & 1) << (7 - k)
        v >>= 3
      }
      return [r, g, b]
    }
  }
}
