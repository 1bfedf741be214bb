# R limma run of perturbridge's limma-trend analysis (the test oracle and the R engine).
# Usage: Rscript limma_trend.R DIR [all|per_contrast]
# DIR holds: expr.txt (genes x samples, whitespace separated, no header), samples.tsv
# (condition, plate per sample, in the column order of expr.txt), levels.txt (condition
# levels in design order), plates.txt (plate levels), contrasts.tsv (treated, control).
# Writes R_<layer>.txt matrices (genes x contrasts) and timings.tsv.
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
how <- if (length(args) >= 2) args[2] else "all"
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
fit <- suppressWarnings(lmFit(y, design))
t_fit <- proc.time()[["elapsed"]]
layers <- c("logFC", "t", "P.Value", "adj.P.Val", "CI.L", "CI.R", "AveExpr", "B")
out <- lapply(layers, function(l) matrix(NA_real_, nrow(y), nrow(ct)))
names(out) <- layers
su <- matrix(NA_real_, nrow(y), nrow(ct))
t_ebayes <- 0
t_toptable <- 0
fill <- function(eb, j, k) {
  t1 <- proc.time()[["elapsed"]]
  tt <- topTable(eb, coef = k, number = Inf, sort.by = "none", confint = TRUE)
  for (l in layers) out[[l]][, j] <<- tt[[l]]
  su[, j] <<- eb$stdev.unscaled[, k]
  t_toptable <<- t_toptable + proc.time()[["elapsed"]] - t1
}
if (how == "per_contrast") {
  # the published pipeline: one contrasts.fit + eBayes per contrast
  for (j in seq_len(nrow(ct))) {
    t1 <- proc.time()[["elapsed"]]
    eb <- eBayes(contrasts.fit(fit, C[, j, drop = FALSE]), trend = TRUE, robust = TRUE)
    t_ebayes <- t_ebayes + proc.time()[["elapsed"]] - t1
    fill(eb, j, 1)
  }
} else {
  t1 <- proc.time()[["elapsed"]]
  eb <- eBayes(contrasts.fit(fit, C), trend = TRUE, robust = TRUE)
  t_ebayes <- proc.time()[["elapsed"]] - t1
  for (j in seq_len(nrow(ct))) fill(eb, j, j)
}
for (l in layers) write.table(out[[l]], file.path(dir, paste0("R_", l, ".txt")),
                              row.names = FALSE, col.names = FALSE)
write.table(su, file.path(dir, "R_stdev.unscaled.txt"), row.names = FALSE, col.names = FALSE)
write.table(data.frame(step = c("read", "lmFit", "contrasts_fit_ebayes", "toptable"),
                       seconds = c(t_read - t0, t_fit - t_read, t_ebayes, t_toptable)),
            file.path(dir, "timings.tsv"), sep = "\t", row.names = FALSE, quote = FALSE)
