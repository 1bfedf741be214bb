# R limma run of perturbridge's limma-trend and limma-voom analyses (the test oracle and
# the R engine).
# Usage: Rscript limma.R DIR [all|per_contrast] [trend|voom] [weights]
# trend: lmFit on log expression, eBayes(trend = TRUE, robust = TRUE).
# voom: edgeR filterByExpr(design) -> keep.lib.sizes = FALSE -> calcNormFactors (TMM) ->
#       voom -> lmFit, eBayes(robust = TRUE). Writes R_keep.txt, R_norm_factors.txt and,
#       with "weights", R_weights.txt (kept genes x samples). If DIR/fit_rows.txt exists
#       (1-based rows of the kept genes), only those genes are fitted.
# DIR holds: expr.txt (genes x samples, whitespace separated, no header), samples.tsv
# (condition, plate per sample, in the column order of expr.txt), levels.txt (condition
# levels in design order), plates.txt (plate levels), contrasts.tsv (treated, control).
# Writes R_<layer>.txt matrices (genes x contrasts): topTable's columns, stdev.unscaled
# (fit$stdev.unscaled) and stdev.scaled (fit$stdev.unscaled * sqrt(fit$s2.post)),
# timings.tsv and, with "all", R_df.prior.txt / R_s2.prior.txt (per gene).
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
how <- if (length(args) >= 2) args[2] else "all"
method <- if (length(args) >= 3) args[3] else "trend"
want_weights <- length(args) >= 4 && args[4] == "weights"
# sample quality weights (arrayWeights / voomWithQualityWeights) when DIR/quality_weights
# exists; the weights go to R_sample_weights.txt
# (limma-trend: estimated with the plate design ~0 + plate when the file says "plate")
qw <- file.exists(file.path(dir, "quality_weights"))
qw_plate <- qw && identical(readLines(file.path(dir, "quality_weights"), warn = FALSE), "plate")
suppressMessages(library(limma))
t0 <- proc.time()[["elapsed"]]
lev <- readLines(file.path(dir, "levels.txt"))
plev <- readLines(file.path(dir, "plates.txt"))
s <- read.delim(file.path(dir, "samples.tsv"), colClasses = "character", quote = "",
                comment.char = "")
y <- matrix(scan(file.path(dir, "expr.txt"), quiet = TRUE), ncol = nrow(s), byrow = TRUE)
ct <- read.delim(file.path(dir, "contrasts.tsv"), colClasses = "character", quote = "",
                 comment.char = "")
cond <- factor(s$condition, levels = lev)
plate <- factor(s$plate, levels = plev)
design <- if (nlevels(plate) > 1) model.matrix(~0 + cond + plate) else model.matrix(~0 + cond)
C <- matrix(0, ncol(design), nrow(ct))
C[cbind(match(ct$treated, lev), seq_len(nrow(ct)))] <- 1
C[cbind(match(ct$control, lev), seq_len(nrow(ct)))] <- -1
t_read <- proc.time()[["elapsed"]]
t_loaded <- t_read
t_prep <- 0
t_voom <- 0
if (method == "voom") {
  suppressMessages(library(edgeR))
  dge <- DGEList(counts = y)
  keep <- filterByExpr(dge, design = design)
  dge <- dge[keep, , keep.lib.sizes = FALSE]
  dge <- calcNormFactors(dge)
  t1 <- proc.time()[["elapsed"]]
  t_prep <- t1 - t_read
  v <- if (qw) voomWithQualityWeights(dge, design) else voom(dge, design)
  if (qw) write(format(v$targets$sample.weights, digits = 17),
                file.path(dir, "R_sample_weights.txt"), ncolumns = 1)
  t_voom <- proc.time()[["elapsed"]] - t1
  # optional: fit only some of the kept genes (benchmarks time R on a gene subset)
  if (file.exists(file.path(dir, "fit_rows.txt"))) {
    v <- v[scan(file.path(dir, "fit_rows.txt"), quiet = TRUE), ]
  }
  t_read <- proc.time()[["elapsed"]]
  fit <- suppressWarnings(lmFit(v, design))
  y <- v$E
  write(as.integer(keep), file.path(dir, "R_keep.txt"), ncolumns = 1)
  write(format(dge$samples$norm.factors, digits = 17), file.path(dir, "R_norm_factors.txt"),
        ncolumns = 1)
  if (want_weights) write.table(v$weights, file.path(dir, "R_weights.txt"),
                                row.names = FALSE, col.names = FALSE)
  trend <- FALSE
} else {
  if (qw) {
    # method "auto": REML for complete data
    aw <- if (qw_plate) arrayWeights(y, model.matrix(~0 + plate)) else arrayWeights(y, design)
    write(format(aw, digits = 17), file.path(dir, "R_sample_weights.txt"), ncolumns = 1)
    fit <- suppressWarnings(lmFit(y, design, weights = aw))
  } else {
    fit <- suppressWarnings(lmFit(y, design))
  }
  trend <- TRUE
}
t_fit <- proc.time()[["elapsed"]]
layers <- c("logFC", "t", "P.Value", "adj.P.Val", "CI.L", "CI.R", "AveExpr", "B")
out <- lapply(layers, function(l) matrix(NA_real_, nrow(y), nrow(ct)))
names(out) <- layers
su <- matrix(NA_real_, nrow(y), nrow(ct))
ss <- matrix(NA_real_, nrow(y), nrow(ct))
t_ebayes <- 0
t_toptable <- 0
fill <- function(eb, j, k) {
  t1 <- proc.time()[["elapsed"]]
  tt <- topTable(eb, coef = k, number = Inf, sort.by = "none", confint = TRUE)
  for (l in layers) out[[l]][, j] <<- tt[[l]]
  su[, j] <<- eb$stdev.unscaled[, k]
  ss[, j] <<- eb$stdev.unscaled[, k] * sqrt(eb$s2.post)
  t_toptable <<- t_toptable + proc.time()[["elapsed"]] - t1
}
if (how == "per_contrast") {
  # the published pipeline: one contrasts.fit + eBayes per contrast
  for (j in seq_len(nrow(ct))) {
    t1 <- proc.time()[["elapsed"]]
    eb <- eBayes(contrasts.fit(fit, C[, j, drop = FALSE]), trend = trend, robust = TRUE)
    t_ebayes <- t_ebayes + proc.time()[["elapsed"]] - t1
    fill(eb, j, 1)
  }
} else {
  t1 <- proc.time()[["elapsed"]]
  eb <- eBayes(contrasts.fit(fit, C), trend = trend, robust = TRUE)
  t_ebayes <- proc.time()[["elapsed"]] - t1
  for (j in seq_len(nrow(ct))) fill(eb, j, j)
  # the eBayes hyper-parameters per gene (one eBayes for the fit)
  write(format(rep_len(eb$df.prior, nrow(y)), digits = 17), file.path(dir, "R_df.prior.txt"),
        ncolumns = 1)
  write(format(rep_len(eb$s2.prior, nrow(y)), digits = 17), file.path(dir, "R_s2.prior.txt"),
        ncolumns = 1)
}
for (l in layers) write.table(out[[l]], file.path(dir, paste0("R_", l, ".txt")),
                              row.names = FALSE, col.names = FALSE)
write.table(su, file.path(dir, "R_stdev.unscaled.txt"), row.names = FALSE, col.names = FALSE)
write.table(ss, file.path(dir, "R_stdev.scaled.txt"), row.names = FALSE, col.names = FALSE)
write.table(data.frame(step = c("read", "filter_tmm", "voom", "lmFit", "contrasts_fit_ebayes",
                                "toptable"),
                       seconds = c(t_loaded - t0, t_prep, t_voom, t_fit - t_read, t_ebayes,
                                   t_toptable)),
            file.path(dir, "timings.tsv"), sep = "\t", row.names = FALSE, quote = FALSE)
