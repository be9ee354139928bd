//! Go's `text/tabwriter` with the settings docker's tables use
//! (minwidth 10, tabwidth 1, padding 3, padchar ' ', no flags): cells end
//! with a tab; a column is as wide as its widest cell in a block of
//! consecutive lines that have that column, plus the padding.

/// docker's `formatter.Context`: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
pub fn docker_table(text: &str) -> String {
    TabWriter {
        min_width: 10,
        padding: 3,
    }
    .format(text)
}

#[derive(Debug, Clone, Copy)]
pub struct TabWriter {
    pub min_width: usize,
    pub padding: usize,
}

impl TabWriter {
    pub fn format(&self, text: &str) -> String {
        let lines: Vec<Vec<&str>> = text
            .split_terminator('\n')
            .map(|l| l.split('\t').collect())
            .collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.block(&lines, 0, lines.len(), &mut widths, &mut out);
        if !text.ends_with('\n') && out.ends_with('\n') {
            out.pop();
        }
        out
    }

    /// Go's `Writer.format`: lay out lines `[line0, line1)` given the widths
    /// of the columns to the left.
    fn block(
        &self,
        lines: &[Vec<&str>],
        mut line0: usize,
        line1: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            write_lines(lines, line0, this, widths, out);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            widths.push(width);
            self.block(lines, line0, this, widths, out);
            widths.pop();
            line0 = this;
        }
        write_lines(lines, line0, line1, widths, out);
    }
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                let n = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', n));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_header_like_docker() {
        let t = docker_table(
            "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\nbusybox\tlatest\t0123456789ab\t2 hours ago\t4.26MB\n",
        );
        assert_eq!(
            t,
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             busybox      latest    0123456789ab   2 hours ago   4.26MB\n"
        );
    }

    #[test]
    fn a_line_without_the_column_ends_the_block() {
        let t = docker_table("a\tb\tc\nlonger-than-ten\tx\nno tabs\nq\tr\n");
        assert_eq!(
            t,
            "a                 b         c\n\
             longer-than-ten   x\n\
             no tabs\n\
             q         r\n"
        );
    }
}
