// The EAST detector's CPU stages around the network (docs/EAST.md, "Detector"): image decoding, the resize
// rule and resize, restoring rotated boxes from the output maps, locality-aware NMS and the final filtering.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eastrt/tensor.h"

namespace eastrt::east {

// ---- Images ----

// 8-bit RGB, rows top to bottom, pixels interleaved (HWC).
struct DeviceImage;  // eastrt/gpu_jpeg.h
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
  // The same pixels in GPU memory when the GPU's JPEG decoder made them (rgb is then empty unless a host copy
  // was asked for); the GPU runner resizes from here. CPU code reads only rgb.
  std::shared_ptr<const DeviceImage> device;
};

// The largest image (width × height) the decoder accepts, so that a forged header cannot exhaust memory.
inline constexpr int64_t kMaxImagePixels = int64_t(1) << 26;

// Decodes a JPEG, PNG or BMP (recognised by content, not by name) to 8-bit RGB. Grey, palette, alpha and
// 16-bit PNGs become 8-bit RGB as cv2.imread(IMREAD_COLOR) makes them (alpha dropped, 16-bit truncated to
// its high byte); CMYK JPEGs are converted as OpenCV does; EXIF orientation is not applied. BMP: 24- and
// 32-bit uncompressed, bottom-up or top-down. A corrupt or truncated image, or bytes that are none of these,
// throw eastrt::Error naming the file (`name` for bytes in memory).
Image decode_image(const std::string& path);
// The image files (.jpg, .jpeg, .png, .bmp, in any case) directly in folder `dir`, in natural order: by the
// first run of digits in the name (img_2 before img_10), then by the name.
std::vector<std::string> image_files_in(const std::string& dir);
Image decode_image(const uint8_t* data, size_t size, const std::string& name);

void write_png(const std::string& path, const Image& image);

// ---- Quadrilaterals ----

struct Point {
  float x = 0, y = 0;
};

// Four vertices in order and a score. Boxes restored from the network run clockwise on screen starting
// at the rectangle's top-left corner.
struct Quad {
  std::array<Point, 4> points{};
  float score = 0;
};

// Draws each quad's closed outline (vertices rounded to the nearest pixel), `thickness` pixels wide,
// clipped to the image.
void draw_quads(Image& image, const std::vector<Quad>& quads, std::array<uint8_t, 3> color, int thickness = 1);

// ---- Pre-processing ----

struct ResizePlan {
  int height = 0, width = 0;        // network input size: multiples of 32, at least 32
  double ratio_h = 1, ratio_w = 1;  // height / original height, width / original width
};

// EAST.md's rule: a longer side above max_side is scaled to max_side (sides truncated to integers), then
// each side that is not a multiple of 32 becomes (side / 32 - 1) * 32, at least 32.
ResizePlan plan_resize(int height, int width, int max_side = 2400);

// cv2.resize(INTER_LINEAR) of the uint8 image, bit for bit: half-pixel centres, edge pixels repeated,
// 11-bit fixed-point weights and OpenCV's x86 rounding, so the values are the integers cv2 would give.
// Returned as float NHWC [1, height, width, 3], RGB in 0..255 (the mean is subtracted inside the network).
HostTensor resize_bilinear(const Image& image, int height, int width);

// plan_resize and resize_bilinear together; the plan, needed to map boxes back, goes to *plan.
HostTensor preprocess(const Image& image, ResizePlan* plan, int max_side = 2400);

// ---- Decoding the output maps ----

// Height and width of an output map shaped [1, h, w, channels] or [h, w, channels] (or [h, w] when channels
// is 1) whose data has that many values; anything else throws eastrt::Error naming `what`.
std::array<int, 2> map_size(const HostTensor& map, int channels, const char* what);

// The rotated rectangle of one output pixel: its origin (4x, 4y) in input pixels lies at distances
// geometry[0..3] from the top, right, bottom and left edges, and the rectangle is rotated by geometry[4]
// (radians; x' = cos a x + sin a y, y' = -sin a x + cos a y). Vertices: top-left, top-right, bottom-right,
// bottom-left of the unrotated rectangle.
Quad restore_rbox(float origin_x, float origin_y, const float geometry[5], float score);

// One quad per pixel whose score is above score_threshold, in row order, each with its own pixel's score.
// score: [1, h, w, 1]; geometry: [1, h, w, 5] (d_top, d_right, d_bottom, d_left, angle). Pixels whose
// geometry is not finite are skipped.
std::vector<Quad> decode_quads(const HostTensor& score, const HostTensor& geometry, float score_threshold = 0.8f);

// ---- Locality-aware NMS (lanms-neo's merge_quadrangle_n9) ----

// Intersection over union of two quads, computed by Clipper on coordinates × 10000 truncated to integers.
float quad_iou(const Quad& a, const Quad& b);

// Walks the quads in order, merging each into the last kept one while their IoU is above the threshold
// (score-weighted vertex average, scores summed), then runs standard NMS by score on what was kept.
// Output in decreasing score. Reproduces lanms-neo including its fixed-point rounding and vertex matching.
std::vector<Quad> locality_aware_nms(const std::vector<Quad>& quads, float iou_threshold = 0.2f);

// ---- Post-processing ----

// The pixels cv2.fillPoly(mask, [xy], 1) sets on a height × width mask (8-connected outline plus
// interior), xy = x0, y0, ..., x3, y3. Returned row-major, 1 inside, 0 outside.
std::vector<uint8_t> rasterize_quad(int height, int width, const std::array<int, 8>& xy);

// Mean score-map value inside a quad given in input pixels, as the reference re-scores: the polygon
// int32(quad) // 4 filled on the 1/4-scale map. 0 when no pixel is covered.
float mean_score_inside(const HostTensor& score, const Quad& quad);

// Vertex order of the reference's output (argman/EAST eval.py sort_poly): start at the vertex with the
// smallest x + y (the first on ties), keep the cyclic order, and reverse the direction (p0, p3, p2, p1)
// unless the first edge is more horizontal than vertical.
Quad sort_vertices(const Quad& quad);

struct DetectOptions {
  float score_threshold = 0.8f;  // score-map threshold for candidate pixels
  float nms_threshold = 0.2f;    // IoU threshold of locality-aware NMS
  float box_threshold = 0.1f;    // boxes whose mean score inside is not above this are dropped
  float min_edge = 5.0f;         // boxes whose first or last edge is shorter (in original pixels) are dropped
};

// The whole post-processing: decode, locality-aware NMS, re-score, map back by the resize ratios, truncate
// to integers (as the reference's np.int32 cast), order the vertices and drop small boxes. Returns quads
// with integral coordinates in original image pixels, scored by their mean score-map value, in NMS order.
std::vector<Quad> detect_boxes(const HostTensor& score, const HostTensor& geometry, double ratio_h, double ratio_w,
                               const DetectOptions& options = {});

// detect_boxes after decode_quads: from the candidate quads (in row order, each with its pixel's score, as
// decode_quads and the GPU decode give them) and the score map.
std::vector<Quad> boxes_from_candidates(const std::vector<Quad>& candidates, const HostTensor& score, double ratio_h,
                                        double ratio_w, const DetectOptions& options = {});

// boxes_from_candidates after locality_aware_nms (on the GPU, say): from the quads it kept, by decreasing
// score, re-scored, scaled back to the image, ordered and filtered.
std::vector<Quad> boxes_from_merged(const std::vector<Quad>& merged, const HostTensor& score, double ratio_h,
                                    double ratio_w, const DetectOptions& options = {});

// "x1,y1,x2,y2,x3,y3,x4,y4" of a quad with integral coordinates (one line of res_img_N.txt, without end).
std::string format_box(const Quad& quad);

}  // namespace eastrt::east
